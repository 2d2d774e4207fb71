import { Badge } from '@mantine/core';
import type { LiveState } from '../live/useLive.ts';

const LABEL: Record<LiveState, string> = { live: 'Live', connecting: 'Connecting…', offline: 'Reconnecting…' };
const COLOR: Record<LiveState, string> = { live: 'teal', connecting: 'gray', offline: 'orange' };

export function LiveIndicator({ state }: { state: LiveState }) {
  return (
    <Badge variant="dot" color={COLOR[state]} role="status" aria-live="polite" data-live={state}>
      {LABEL[state]}
    </Badge>
  );
}
