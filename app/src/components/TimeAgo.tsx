import { Tooltip } from '@mantine/core';
import { startTransition, useEffect, useState } from 'react';

/** Re-renders every `ms` (a transition: a screenful of relative times never blocks input): relative times stay true without refetching anything. */
export function useNow(ms = 15_000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => startTransition(() => setNow(Date.now())), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

export function ago(iso: string | undefined, now: number): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

/** Local date and time with the zone, so a reader abroad is never misled. */
export function localTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return 'an unknown time';
  // dateStyle/timeStyle cannot be combined with timeZoneName: spell the fields out
  return date.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
}

export function TimeAgo({ iso, now }: { iso: string | undefined; now: number }) {
  if (!iso) return <span>never</span>;
  return (
    <Tooltip label={localTime(iso)}>
      <time dateTime={iso}>{ago(iso, now)}</time>
    </Tooltip>
  );
}
