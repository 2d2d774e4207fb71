import { createTheme } from '@mantine/core';

/** Calm by default: colour is kept for what needs attention (alert and NEWS2 bands). */
export const theme = createTheme({
  primaryColor: 'indigo',
  defaultRadius: 'md',
  fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  headings: { fontWeight: '650' },
});
