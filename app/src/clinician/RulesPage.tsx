import { Alert, Badge, Button, Checkbox, Group, MultiSelect, NativeSelect, Paper, Radio, Stack, Table, Text, Textarea, TextInput, Title, VisuallyHidden } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { formatHumanName } from '@medplum/core';
import type { CareTeam, Patient, PlanDefinition } from '@medplum/fhirtypes';
import { ResourceName } from '@medplum/react';
import { IconAlertTriangle, IconPlus, IconTrash } from '@tabler/icons-react';
import { useCallback, useEffect, useState } from 'react';
import { useSession } from '../auth/session.tsx';
import { ErrorState, Loading } from '../components/LoadState.tsx';
import { localTime } from '../components/TimeAgo.tsx';
import { PRIORITY_COLOR, PRIORITY_LABEL, type Priority } from '../fhir/alerts.ts';
import {
  alertCodeOf, CONDITION_PATH, EMPTY_RULE, evaluateRule, formOf, issuesByPath, loadRules, MEASURES, measuresOf, planOf, saveRule, scopeOf,
  type RuleForm, type ScopeKind, type Verdict,
} from '../fhir/rules.ts';
import { TEXT } from '../theme.ts';

const STATUS_COLOR: Record<string, string> = { active: 'teal.9', draft: 'gray.7', retired: 'dark.4' };
const PRIORITIES = (Object.keys(PRIORITY_LABEL) as Priority[]).map((p) => ({ value: p, label: PRIORITY_LABEL[p] }));
/** How many of a test's readings are listed; the summary counts them all. */
const SHOWN_READINGS = 10;

const nameOf = (p: Patient): string => (p.name?.[0] ? formatHumanName(p.name[0]) : `Patient/${p.id}`);

/** The organisation's own alert rules: list, write, try on a patient, activate, retire. */
export default function RulesPage() {
  const { medplum } = useSession();
  const [rules, setRules] = useState<PlanDefinition[]>();
  const [error, setError] = useState<unknown>();
  const [patients, setPatients] = useState<Patient[]>([]);
  const [teams, setTeams] = useState<CareTeam[]>([]);
  /** The rule in the editor (none for a new one); `key` is per opening, so saving keeps the editor's state. */
  const [editing, setEditing] = useState<{ base?: PlanDefinition; key: number }>();

  const load = useCallback(() => {
    setError(undefined);
    loadRules(medplum).then(setRules, setError);
    medplum.searchResources('Patient', { _count: 200 }).then((p) => setPatients([...p].sort((a, b) => nameOf(a).localeCompare(nameOf(b)))), () => setPatients([]));
    medplum.searchResources('CareTeam', { status: 'active', _count: 200 }).then((t) => setTeams([...t]), () => setTeams([]));
  }, [medplum]);
  useEffect(load, [load]);

  const saved = (plan: PlanDefinition) => {
    setRules((current) => [...(current ?? []).filter((r) => r.id !== plan.id), plan].sort((a, b) => (a.title ?? '').localeCompare(b.title ?? '')));
    setEditing((current) => ({ base: plan, key: current?.key ?? Date.now() }));
  };

  if (error !== undefined) return <ErrorState error={error} retry={load} />;
  if (!rules) return <Loading label="Loading alert rules…" />;
  return (
    <Stack gap="md" maw={1100}>
      <Group justify="space-between" align="flex-end">
        <div>
          <Title order={1} size="h2">Alert rules</Title>
          <Text c="dimmed" size="sm">Your organisation's own rules, beside NEWS2 and the built-in thresholds. Only active rules raise alerts.</Text>
        </div>
        <Button leftSection={<IconPlus size={16} aria-hidden />} onClick={() => setEditing({ key: Date.now() })}>New rule</Button>
      </Group>
      <RulesTable rules={rules} onEdit={(base) => setEditing({ base, key: Date.now() })} />
      {editing && (
        <RuleEditor key={editing.key} base={editing.base} patients={patients} teams={teams} onSaved={saved} onClose={() => setEditing(undefined)} />
      )}
    </Stack>
  );
}

function RulesTable({ rules, onEdit }: { rules: PlanDefinition[]; onEdit(rule: PlanDefinition): void }) {
  if (!rules.length) return <Text size="sm" c="dimmed">No custom rules yet.</Text>;
  return (
    <Table.ScrollContainer minWidth={720}>
      <Table aria-label="Alert rules">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Rule</Table.Th><Table.Th>Status</Table.Th><Table.Th>Watches</Table.Th><Table.Th>Applies to</Table.Th><Table.Th>Alert</Table.Th>
            <Table.Th><VisuallyHidden>Actions</VisuallyHidden></Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rules.map((rule) => {
            const priority = (rule.action?.[0]?.priority ?? 'routine') as Priority;
            const scope = scopeOf(rule);
            const measures = measuresOf(rule);
            return (
              <Table.Tr key={rule.id} data-rule={rule.id}>
                <Table.Td>{rule.title}</Table.Td>
                <Table.Td><Badge color={STATUS_COLOR[rule.status] ?? 'gray.7'} autoContrast>{rule.status}</Badge></Table.Td>
                <Table.Td>{measures.length ? measures.join(', ') : 'Every reading'}</Table.Td>
                <Table.Td>{scope.length ? scope.map((s, i) => <Text key={s} size="sm" span>{i > 0 && ', '}<ResourceName value={{ reference: s }} /></Text>) : 'Everyone'}</Table.Td>
                <Table.Td>
                  <Group gap={6} wrap="nowrap">
                    <Badge color={PRIORITY_COLOR[priority]} autoContrast>{PRIORITY_LABEL[priority]}</Badge>
                    <Text size="xs" ff="monospace">{alertCodeOf(rule)}</Text>
                  </Group>
                </Table.Td>
                <Table.Td><Button size="xs" variant="default" onClick={() => onEdit(rule)} aria-label={`Edit ${rule.title ?? 'rule'}`}>Edit</Button></Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

interface EditorProps {
  base?: PlanDefinition;
  patients: Patient[];
  teams: CareTeam[];
  onSaved(plan: PlanDefinition): void;
  onClose(): void;
}

type Issues = ReturnType<typeof issuesByPath>;

function RuleEditor({ base, patients, teams, onSaved, onClose }: EditorProps) {
  const { medplum } = useSession();
  const [form, setForm] = useState<RuleForm>(() => (base ? formOf(base) : EMPTY_RULE));
  const [patientId, setPatientId] = useState('');
  const [verdict, setVerdict] = useState<Verdict>();
  /** The form as it was when last tested without a refusal: activation needs the rule as tested. */
  const [tested, setTested] = useState<string>();
  const [issues, setIssues] = useState<Issues>();
  const [busy, setBusy] = useState<string>();
  const set = (patch: Partial<RuleForm>) => setForm((f) => ({ ...f, ...patch }));
  const testPatient = patientId || patients[0]?.id || '';
  const isTested = tested === JSON.stringify(form);

  const fieldError = (path: string) => issues?.byPath.get(path);
  const scopeError = [...(issues?.byPath ?? [])].find(([p]) => p.startsWith('PlanDefinition.extension'))?.[1];
  const shown = (path: string) =>
    path.startsWith('PlanDefinition.extension') || ['PlanDefinition.title', 'PlanDefinition.action[0].description', 'PlanDefinition.action[0].priority'].includes(path) ||
    form.conditions.some((_, i) => path === CONDITION_PATH(i));
  const general = [...(issues?.general ?? []), ...[...(issues?.byPath ?? [])].filter(([p]) => !shown(p)).map(([, text]) => text)];

  const test = async () => {
    setBusy('test');
    setIssues(undefined);
    try {
      setVerdict(await evaluateRule(medplum, planOf(form, base?.status ?? 'draft', base), testPatient));
      setTested(JSON.stringify(form));
    } catch (err) {
      setVerdict(undefined);
      setIssues(issuesByPath(err));
    } finally {
      setBusy(undefined);
    }
  };

  const save = async (status: PlanDefinition['status'], message: string) => {
    setBusy(status);
    setIssues(undefined);
    try {
      onSaved(await saveRule(medplum, planOf(form, status, base)));
      notifications.show({ color: 'teal', message });
    } catch (err) {
      setIssues(issuesByPath(err));
    } finally {
      setBusy(undefined);
    }
  };

  const heading = base ? `Edit rule: ${base.title ?? ''}` : 'New rule';
  return (
    <Paper withBorder p="md" component="section" aria-labelledby="rule-editor-heading">
      <Group justify="space-between" mb="sm">
        <Title order={2} size="h4" id="rule-editor-heading">{heading}</Title>
        {base && <Badge color={STATUS_COLOR[base.status] ?? 'gray.7'} autoContrast>{base.status}</Badge>}
      </Group>
      <Stack gap="sm">
        {general.length > 0 && (
          <Alert color="red" icon={<IconAlertTriangle aria-hidden />} title="The rule was refused" role="alert">
            {general.map((g) => <Text key={g} size="sm">{g}</Text>)}
          </Alert>
        )}
        <TextInput label="Name" description="The alert's title" withAsterisk value={form.title} onChange={(e) => set({ title: e.currentTarget.value })} error={fieldError('PlanDefinition.title')} />
        <Textarea label="Alert text" description="What the care team reads when the rule fires" withAsterisk autosize minRows={2} value={form.text} onChange={(e) => set({ text: e.currentTarget.value })} error={fieldError('PlanDefinition.action[0].description')} />
        <Checkbox.Group label="Readings it watches" description="None ticked: every reading" value={form.measures} onChange={(measures) => set({ measures })}>
          <Group gap="md" mt={6}>
            {MEASURES.map((m) => <Checkbox key={m.key} value={m.key} label={m.label} />)}
          </Group>
        </Checkbox.Group>
        {form.conditions.map((expression, i) => (
          <Group key={i} align="flex-start" wrap="nowrap" gap="xs">
            <Textarea
              style={{ flex: 1 }}
              label={form.conditions.length > 1 ? `Condition ${i + 1} (FHIRPath)` : 'Condition (FHIRPath)'}
              description={i === 0 ? 'Fires when every condition is true. The reading is the context; %previous, %recent and %patient are there too, e.g. value.value - %previous.value.value >= 20' : undefined}
              withAsterisk
              autosize
              minRows={1}
              styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }}
              value={expression}
              onChange={(e) => {
                const value = e.currentTarget.value;
                set({ conditions: form.conditions.map((c, j) => (j === i ? value : c)) });
              }}
              error={fieldError(CONDITION_PATH(i))}
            />
            {form.conditions.length > 1 && (
              <Button mt={28} size="xs" variant="subtle" color="red" c={TEXT.danger} leftSection={<IconTrash size={14} aria-hidden />}
                onClick={() => set({ conditions: form.conditions.filter((_, j) => j !== i) })}>
                Remove<VisuallyHidden> condition {i + 1}</VisuallyHidden>
              </Button>
            )}
          </Group>
        ))}
        <Group>
          <Button size="xs" variant="subtle" c={TEXT.link} leftSection={<IconPlus size={14} aria-hidden />} onClick={() => set({ conditions: [...form.conditions, ''] })}>Add a condition</Button>
        </Group>
        <NativeSelect label="Severity" data={PRIORITIES} value={form.priority} onChange={(e) => set({ priority: e.currentTarget.value as Priority })} error={fieldError('PlanDefinition.action[0].priority')} w={220} />
        <Radio.Group label="Applies to" value={form.scopeKind} onChange={(v) => set({ scopeKind: v as ScopeKind, scope: [] })} error={form.scopeKind === 'everyone' ? scopeError : undefined}>
          <Group gap="md" mt={6}>
            <Radio value="everyone" label="Everyone" />
            <Radio value="Patient" label="Chosen patients" />
            <Radio value="CareTeam" label="Chosen care teams" />
          </Group>
        </Radio.Group>
        {form.scopeKind !== 'everyone' && (
          <MultiSelect
            label={form.scopeKind === 'Patient' ? 'Patients' : 'Care teams'}
            searchable
            data={form.scopeKind === 'Patient'
              ? patients.map((p) => ({ value: `Patient/${p.id}`, label: nameOf(p) }))
              : teams.map((t) => ({ value: `CareTeam/${t.id}`, label: t.name ?? `CareTeam/${t.id}` }))}
            value={form.scope}
            onChange={(scope) => set({ scope })}
            error={scopeError}
          />
        )}

        <Paper withBorder p="sm" component="section" aria-labelledby="rule-test-heading">
          <Title order={3} size="h5" id="rule-test-heading" mb="xs">Test before activating</Title>
          <Group align="flex-end" gap="sm">
            <NativeSelect label="Patient to test on" data={patients.map((p) => ({ value: p.id ?? '', label: nameOf(p) }))} value={testPatient} onChange={(e) => setPatientId(e.currentTarget.value)} w={260} />
            <Button variant="default" onClick={() => void test()} loading={busy === 'test'} disabled={!testPatient}>Test on patient</Button>
          </Group>
          <div role="status" aria-live="polite">{verdict && <VerdictView verdict={verdict} stale={!isTested} />}</div>
        </Paper>

        <Group gap="sm">
          <Button variant="default" onClick={() => void save('draft', 'Rule saved as draft')} loading={busy === 'draft'}>Save as draft</Button>
          <Button onClick={() => void save('active', 'Rule activated')} loading={busy === 'active'} disabled={!isTested} aria-describedby="activate-hint">Activate</Button>
          {base?.id && base.status !== 'retired' && (
            <Button variant="default" color="red" c={TEXT.danger} onClick={() => void save('retired', 'Rule retired')} loading={busy === 'retired'}>Retire</Button>
          )}
          <Button variant="subtle" c={TEXT.link} onClick={onClose}>Close</Button>
        </Group>
        <Text size="xs" c="dimmed" id="activate-hint">{isTested ? 'Tested as it is now: it can be activated.' : 'Test the rule as it is now on a patient before activating it.'}</Text>
      </Stack>
    </Paper>
  );
}

function VerdictView({ verdict, stale }: { verdict: Verdict; stale: boolean }) {
  const shown = verdict.readings.slice(0, SHOWN_READINGS);
  return (
    <Stack gap="xs" mt="sm" data-verdict={verdict.fires ? 'fires' : 'quiet'}>
      <Group gap="xs">
        <Badge color={verdict.fires ? 'orange.6' : 'teal.9'} autoContrast size="lg">{verdict.fires ? 'Would fire' : 'Would not fire'}</Badge>
        {stale && <Text size="xs" c={TEXT.warn}>The rule has changed since this test.</Text>}
      </Group>
      <Text size="sm">{verdict.summary}</Text>
      {shown.length > 0 && (
        <Table aria-label="Readings tested">
          <Table.Thead><Table.Tr><Table.Th>Reading taken</Table.Th><Table.Th>Value</Table.Th><Table.Th>Verdict</Table.Th><Table.Th>Why</Table.Th></Table.Tr></Table.Thead>
          <Table.Tbody>
            {shown.map((r) => (
              <Table.Tr key={r.observation}>
                <Table.Td>{r.effective ? <time dateTime={r.effective}>{localTime(r.effective)}</time> : '—'}</Table.Td>
                <Table.Td>{r.value ?? '—'}</Table.Td>
                <Table.Td>{r.skipped ? 'Skipped' : r.fires ? 'Fires' : 'Does not fire'}</Table.Td>
                <Table.Td>
                  {r.skipped && <Text size="xs">{r.skipped}</Text>}
                  {r.conditions.map((c) => (
                    <Text key={c.path} size="xs" ff="monospace" c={c.error ? TEXT.danger : undefined}>
                      {c.error ? `error: ${c.error}` : `${c.met ? 'met' : 'not met'}: ${c.result}`}
                    </Text>
                  ))}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
      {verdict.readings.length > shown.length && <Text size="xs" c="dimmed">…and {verdict.readings.length - shown.length} older readings.</Text>}
    </Stack>
  );
}
