import { Badge } from '@mantine/core';
import { memo } from 'react';
import { BAND_COLOR, BAND_LABEL, type News2 } from '../fhir/alerts.ts';

/** Equal for the badge: a live ward recomputes NEWS2 objects whose score and band rarely move. */
export const sameNews2 = (a: News2 | undefined, b: News2 | undefined): boolean => a?.score === b?.score && a?.band === b?.band;

interface Props { news2: News2 | undefined; size?: 'md' | 'lg' | 'xl' }

export const News2Badge = memo(function News2Badge({ news2, size = 'lg' }: Props) {
  if (!news2) {
    return <Badge size={size} variant="outline" color="gray" aria-label="NEWS2 not available">NEWS2 —</Badge>;
  }
  const label = `NEWS2 ${news2.score}, ${BAND_LABEL[news2.band]} risk`;
  // a native title, not a Tooltip: a ward re-sorting on new scores redraws many badges at once
  return (
    <Badge size={size} autoContrast color={BAND_COLOR[news2.band]} variant={news2.band === 'low' ? 'default' : 'filled'} aria-label={label} title={`${BAND_LABEL[news2.band]} clinical risk`}>
      NEWS2 {news2.score}
    </Badge>
  );
}, (a, b) => a.size === b.size && sameNews2(a.news2, b.news2));
