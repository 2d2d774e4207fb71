import { ActionIcon, AppShell, Group, Menu, Text, UnstyledButton, VisuallyHidden, useComputedColorScheme, useMantineColorScheme } from '@mantine/core';
import { ResourceName } from '@medplum/react';
import { IconHeartbeat, IconLogout, IconMoon, IconSun, IconUserCircle } from '@tabler/icons-react';
import type { ReactNode } from 'react';
import { NavLink } from 'react-router';
import { useSession } from '../auth/session.tsx';
import classes from './AppLayout.module.css';

export function AppLayout({ children }: { children: ReactNode }) {
  const { role, fhirUser, signOut } = useSession();
  const { setColorScheme } = useMantineColorScheme();
  const scheme = useComputedColorScheme('light');
  return (
    <AppShell header={{ height: 56 }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="lg" wrap="nowrap">
            <Group gap={6} wrap="nowrap">
              <IconHeartbeat aria-hidden color="var(--mantine-color-indigo-6)" />
              <Text fw={700} size="lg">Vigil</Text>
              <Text size="sm" c="dimmed" visibleFrom="xs">{role === 'clinician' ? 'Clinician' : 'My health'}</Text>
            </Group>
            {role === 'clinician' && (
              <nav aria-label="Main">
                <Group gap="xs" wrap="nowrap">
                  <NavLink to="/" end className={classes.link}>Patients</NavLink>
                  <NavLink to="/alerts" className={classes.link}>Alerts</NavLink>
                  <NavLink to="/rules" className={classes.link}>Rules</NavLink>
                </Group>
              </nav>
            )}
          </Group>
          <Group gap="xs" wrap="nowrap">
            <ActionIcon
              variant="subtle"
              size="lg"
              aria-label={scheme === 'dark' ? 'Switch to light mode' : 'Switch to dark mode'}
              onClick={() => setColorScheme(scheme === 'dark' ? 'light' : 'dark')}
            >
              {scheme === 'dark' ? <IconSun aria-hidden /> : <IconMoon aria-hidden />}
            </ActionIcon>
            <Menu position="bottom-end">
              <Menu.Target>
                <UnstyledButton className={classes.account}>
                  <Group gap={6} wrap="nowrap">
                    <IconUserCircle aria-hidden />
                    <Text size="sm" visibleFrom="sm"><ResourceName value={{ reference: fhirUser }} /></Text>
                    <VisuallyHidden hiddenFrom="sm">Account</VisuallyHidden>
                  </Group>
                </UnstyledButton>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Item leftSection={<IconLogout size={16} aria-hidden />} onClick={signOut}>Sign out</Menu.Item>
              </Menu.Dropdown>
            </Menu>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}
