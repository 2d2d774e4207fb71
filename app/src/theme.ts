import { createTheme, Notification, type CSSVariablesResolver } from '@mantine/core';

/** Calm by default: colour is kept for what needs attention (alert and NEWS2 bands). */
export const theme = createTheme({
  primaryColor: 'indigo',
  // shade 7 keeps white text on filled buttons and badges above WCAG AA contrast
  primaryShade: { light: 7, dark: 8 },
  defaultRadius: 'md',
  fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  headings: { fontWeight: '650' },
  components: {
    // Mantine's close button is an icon alone: without a name, screen readers announce "button"
    Notification: Notification.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Dismiss' } } }),
  },
});

/** Text colours with WCAG AA contrast (4.5:1) on both schemes; Mantine's dimmed default is lighter. */
export const cssVariables: CSSVariablesResolver = () => ({
  variables: {},
  light: {
    '--mantine-color-dimmed': 'var(--mantine-color-gray-7)',
    '--vigil-text-ok': 'var(--mantine-color-teal-9)',
    // Mantine's darkest orange (orange-9) is 4.3:1 on white: short of AA for small text
    '--vigil-text-warn': '#b8400d',
    '--vigil-text-link': 'var(--mantine-color-indigo-8)',
    '--vigil-text-danger': 'var(--mantine-color-red-9)',
  },
  dark: {
    '--mantine-color-dimmed': 'var(--mantine-color-dark-1)',
    '--vigil-text-ok': 'var(--mantine-color-teal-3)',
    '--vigil-text-warn': 'var(--mantine-color-orange-3)',
    '--vigil-text-link': 'var(--mantine-color-indigo-2)',
    '--vigil-text-danger': 'var(--mantine-color-red-3)',
  },
});

export const TEXT = { ok: 'var(--vigil-text-ok)', warn: 'var(--vigil-text-warn)', link: 'var(--vigil-text-link)', danger: 'var(--vigil-text-danger)' } as const;
