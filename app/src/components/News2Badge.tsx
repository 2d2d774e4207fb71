import { Badge, Tooltip } from '@mantine/core';
import { BAND_COLOR, BAND_LABEL, type News2 } from '../fhir/alerts.ts';

export function News2Badge({ news2, size = 'lg' }: { news2: News2 | undefined; size?: 'md' | 'lg' | 'xl' }) {
  if (!news2) {
    return <Badge size={size} variant="outline" color="gray" aria-label="NEWS2 not available">NEWS2 —</Badge>;
  }
  const label = `NEWS2 ${news2.score}, ${BAND_LABEL[news2.band]} risk`;
  return (
    <Tooltip label={`${BAND_LABEL[news2.band]} clinical risk`}>
      <Badge size={size} autoContrast color={BAND_COLOR[news2.band]} variant={news2.band === 'low' ? 'default' : 'filled'} aria-label={label}>
        NEWS2 {news2.score}
      </Badge>
    </Tooltip>
  );
}
