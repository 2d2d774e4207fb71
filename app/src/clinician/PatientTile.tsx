import { Badge, Card, Group, SimpleGrid, Stack, Text, Tooltip } from '@mantine/core';
import { formatHumanName } from '@medplum/core';
import type { HumanName } from '@medplum/fhirtypes';
import { IconBell, IconDeviceWatch } from '@tabler/icons-react';
import { memo } from 'react';
import { Link } from 'react-router';
import { ago } from '../components/TimeAgo.tsx';
import { News2Badge } from '../components/News2Badge.tsx';
import { alertTitle, byUrgency, flagPriority, PRIORITY_COLOR, PRIORITY_LABEL } from '../fhir/alerts.ts';
import { news2OfRow, type PatientRow } from '../fhir/panel.ts';
import { ageYears, formatValue, latestReadings, outsideNormal, VITALS } from '../fhir/vitals.ts';
import { TEXT } from '../theme.ts';
import classes from './PatientTile.module.css';

/** A device is silent when it has sent nothing for this long. */
const SILENT_MS = 60 * 60_000;
const TILE_VITALS = VITALS.filter((v) => v.key !== 'weight');

export const PatientTile = memo(function PatientTile({ row, now }: { row: PatientRow; now: number }) {
  const { patient, flags, devices } = row;
  const name = formatHumanName(patient.name?.[0] as HumanName) || 'Unnamed patient';
  const readings = latestReadings(row.latest);
  const news2 = news2OfRow(row);
  const sorted = [...flags].sort(byUrgency);
  const top = sorted[0];
  const lastSeen = (device: string): string | undefined =>
    [...readings.values()].filter((r) => r.device === device).map((r) => r.at).sort().at(-1);
  return (
    <Card
      withBorder
      padding="sm"
      className={classes.tile}
      data-priority={top ? flagPriority(top) : 'none'}
      aria-label={`${name}${top ? `, ${PRIORITY_LABEL[flagPriority(top)]} alert` : ''}`}
      component="article"
    >
      <Group justify="space-between" wrap="nowrap" align="flex-start">
        <div>
          <Text fw={650} component={Link} to={`/patients/${patient.id}`} className={classes.name}>{name}</Text>
          <Text size="xs" c="dimmed">
            {[patient.birthDate && `${ageYears(patient.birthDate)} y`, patient.gender, 'Home'].filter(Boolean).join(' · ')}
          </Text>
        </div>
        <News2Badge news2={news2} />
      </Group>
      <SimpleGrid cols={3} spacing={6} verticalSpacing={6} mt="xs">
        {TILE_VITALS.map((vital) => {
          const reading = readings.get(vital.key);
          const abnormal = reading && outsideNormal(vital, reading.value);
          return (
            <div key={vital.key} className={classes.vital} data-abnormal={abnormal || undefined}>
              <Text size="xs" c="dimmed" lh={1.2}>{vital.label}</Text>
              <Text fw={abnormal ? 700 : 500} lh={1.3}>
                {reading ? formatValue(vital, reading.value) : '—'}
                {reading && <Text span size="xs" c="dimmed"> {vital.unit}</Text>}
              </Text>
              <Text size="xs" c="dimmed" lh={1.2}>{reading ? ago(reading.at, now) : 'no data'}</Text>
            </div>
          );
        })}
      </SimpleGrid>
      <Stack gap={4} mt="xs">
        {sorted.slice(0, 2).map((flag) => (
          <Badge key={flag.id} color={PRIORITY_COLOR[flagPriority(flag)]} autoContrast leftSection={<IconBell size={12} aria-hidden />} fullWidth radius="sm">
            {PRIORITY_LABEL[flagPriority(flag)]}: {alertTitle(flag)}
          </Badge>
        ))}
        {sorted.length > 2 && <Text size="xs" c="dimmed">+{sorted.length - 2} more alerts</Text>}
        {devices.map((device) => {
          const seen = lastSeen(`Device/${device.id}`);
          const silent = !seen || now - Date.parse(seen) > SILENT_MS;
          return (
            <Tooltip key={device.id} label={seen ? `Last reading ${new Date(seen).toLocaleString()}` : 'No readings yet'}>
              <Group gap={4} wrap="nowrap">
                <IconDeviceWatch size={14} aria-hidden color={silent ? 'var(--mantine-color-orange-6)' : 'var(--mantine-color-dimmed)'} />
                <Text size="xs" c={silent ? TEXT.warn : 'dimmed'} truncate>
                  {device.deviceName?.[0]?.name ?? 'Device'} · {silent ? 'silent' : 'seen'} {ago(seen, now)}
                </Text>
              </Group>
            </Tooltip>
          );
        })}
      </Stack>
    </Card>
  );
});
