import { Group, SegmentedControl, TextInput } from '@mantine/core';

export type RangeKey = '1h' | '24h' | '7d' | '30d' | 'custom';
export const RANGE_MS: Record<Exclude<RangeKey, 'custom'>, number> = { '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 };

export interface Range { key: RangeKey; start: number; end: number }

/** `datetime-local` speaks local wall-clock time without a zone. */
const toLocalInput = (t: number): string => {
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
};

export function rangeFor(key: Exclude<RangeKey, 'custom'>, now = Date.now()): Range {
  return { key, start: now - RANGE_MS[key], end: now };
}

export function RangePicker({ range, onChange }: { range: Range; onChange(range: Range): void }) {
  return (
    <Group gap="sm" align="flex-end">
      <SegmentedControl
        aria-label="Time range"
        value={range.key}
        onChange={(key) => onChange(key === 'custom' ? { ...range, key: 'custom' } : rangeFor(key as Exclude<RangeKey, 'custom'>))}
        data={[
          { value: '1h', label: '1 h' }, { value: '24h', label: '24 h' }, { value: '7d', label: '7 days' },
          { value: '30d', label: '30 days' }, { value: 'custom', label: 'Custom' },
        ]}
      />
      {range.key === 'custom' && (
        <>
          <TextInput type="datetime-local" label="From" size="xs" value={toLocalInput(range.start)} max={toLocalInput(range.end)}
            onChange={(e) => { const t = Date.parse(e.currentTarget.value); if (t < range.end) onChange({ ...range, start: t }); }} />
          <TextInput type="datetime-local" label="To" size="xs" value={toLocalInput(range.end)} min={toLocalInput(range.start)}
            onChange={(e) => { const t = Date.parse(e.currentTarget.value); if (t > range.start) onChange({ ...range, end: t }); }} />
        </>
      )}
    </Group>
  );
}
