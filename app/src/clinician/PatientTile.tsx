import { Badge, Card, Group, Text, Tooltip } from '@mantine/core';
import { formatHumanName } from '@medplum/core';
import type { Device, Flag, HumanName, Patient } from '@medplum/fhirtypes';
import { IconBell, IconDeviceWatch } from '@tabler/icons-react';
import { memo } from 'react';
import { Link } from 'react-router';
import { ago } from '../components/TimeAgo.tsx';
import { News2Badge, sameNews2 } from '../components/News2Badge.tsx';
import { alertTitle, byUrgency, flagPriority, PRIORITY_COLOR, PRIORITY_LABEL, type News2 } from '../fhir/alerts.ts';
import { news2OfRow, type PatientRow } from '../fhir/panel.ts';
import { ageYears, formatValue, latestReadings, outsideNormal, VITALS, type Vital } from '../fhir/vitals.ts';
import { TEXT } from '../theme.ts';
import classes from './PatientTile.module.css';

/** A device is silent when it has sent nothing for this long. */
const SILENT_MS = 60 * 60_000;
const TILE_VITALS = VITALS.filter((v) => v.key !== 'weight');

/**
 * A busy ward touches most tiles on every live batch, so a tile is split into memoised parts that
 * take primitives or unchanged references: a new pulse re-renders one vital cell, not the tile's
 * Mantine components. The vital cells, the most frequently redrawn, are plain elements.
 */
export const PatientTile = memo(function PatientTile({ row, now }: { row: PatientRow; now: number }) {
  const { patient, flags, devices } = row;
  const name = formatHumanName(patient.name?.[0] as HumanName) || 'Unnamed patient';
  const readings = latestReadings(row.latest);
  const top = flags.length ? flagPriority([...flags].sort(byUrgency)[0]) : undefined;
  const lastSeen = (device: string): string | undefined =>
    [...readings.values()].filter((r) => r.device === device).map((r) => r.at).sort().at(-1);
  return (
    <Card
      withBorder
      padding="sm"
      className={classes.tile}
      data-priority={top ?? 'none'}
      aria-label={`${name}${top ? `, ${PRIORITY_LABEL[top]} alert` : ''}`}
      component="article"
    >
      <TileHeader patient={patient} name={name} news2={news2OfRow(row)} />
      <div className={classes.vitals}>
        {TILE_VITALS.map((vital) => {
          const reading = readings.get(vital.key);
          return <VitalCell key={vital.key} vital={vital} value={reading?.value} at={reading?.at} now={now} />;
        })}
      </div>
      <div className={classes.status}>
        <TileAlerts flags={flags} />
        {devices.map((device) => <DeviceLine key={device.id} device={device} seen={lastSeen(`Device/${device.id}`)} now={now} />)}
      </div>
    </Card>
  );
});

const TileHeader = memo(function TileHeader({ patient, name, news2 }: { patient: Patient; name: string; news2: News2 | undefined }) {
  return (
    <Group justify="space-between" wrap="nowrap" align="flex-start">
      <div>
        <Text fw={650} component={Link} to={`/patients/${patient.id}`} className={classes.name}>{name}</Text>
        <Text size="xs" c="dimmed">
          {[patient.birthDate && `${ageYears(patient.birthDate)} y`, patient.gender, 'Home'].filter(Boolean).join(' · ')}
        </Text>
      </div>
      <News2Badge news2={news2} />
    </Group>
  );
}, (a, b) => a.patient === b.patient && a.name === b.name && sameNews2(a.news2, b.news2));

const VitalCell = memo(function VitalCell({ vital, value, at, now }: { vital: Vital; value: number | undefined; at: string | undefined; now: number }) {
  const seen = value !== undefined;
  return (
    <div className={classes.vital} data-abnormal={(seen && outsideNormal(vital, value)) || undefined}>
      <p className={classes.dimmed}>{vital.label}</p>
      <p className={classes.value}>
        {seen ? formatValue(vital, value) : '—'}
        {seen && <span className={classes.unit}> {vital.unit}</span>}
      </p>
      <p className={classes.dimmed}>{seen ? ago(at, now) : 'no data'}</p>
    </div>
  );
});

const TileAlerts = memo(function TileAlerts({ flags }: { flags: Flag[] }) {
  const sorted = [...flags].sort(byUrgency);
  return (
    <>
      {sorted.slice(0, 2).map((flag) => (
        <Badge key={flag.id} color={PRIORITY_COLOR[flagPriority(flag)]} autoContrast leftSection={<IconBell size={12} aria-hidden />} fullWidth radius="sm">
          {PRIORITY_LABEL[flagPriority(flag)]}: {alertTitle(flag)}
        </Badge>
      ))}
      {sorted.length > 2 && <Text size="xs" c="dimmed">+{sorted.length - 2} more alerts</Text>}
    </>
  );
});

const DeviceLine = memo(function DeviceLine({ device, seen, now }: { device: Device; seen: string | undefined; now: number }) {
  const silent = !seen || now - Date.parse(seen) > SILENT_MS;
  return (
    <Tooltip label={seen ? `Last reading ${new Date(seen).toLocaleString()}` : 'No readings yet'}>
      <Group gap={4} wrap="nowrap">
        <IconDeviceWatch size={14} aria-hidden color={silent ? 'var(--mantine-color-orange-6)' : 'var(--mantine-color-dimmed)'} />
        <Text size="xs" c={silent ? TEXT.warn : 'dimmed'} truncate>
          {device.deviceName?.[0]?.name ?? 'Device'} · {silent ? 'silent' : 'seen'} {ago(seen, now)}
        </Text>
      </Group>
    </Tooltip>
  );
});
