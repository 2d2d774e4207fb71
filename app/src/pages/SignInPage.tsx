import { Button, Center, Paper, Stack, Text, Title } from '@mantine/core';
import { IconHeartbeat } from '@tabler/icons-react';
import { useState } from 'react';
import { signIn } from '../auth/session.tsx';
import { ErrorState } from '../components/LoadState.tsx';

export function SignInPage() {
  const [error, setError] = useState<unknown>();
  const returnTo = window.location.pathname + window.location.search;
  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" maw={420} w="100%">
        <Stack align="center" gap="md">
          <IconHeartbeat size={40} aria-hidden color="var(--mantine-color-indigo-6)" />
          <Title order={1} size="h2">Vigil</Title>
          <Text c="dimmed" ta="center">Remote monitoring for care teams and the people they look after.</Text>
          {error !== undefined && <ErrorState error={error} />}
          <Button fullWidth size="md" onClick={() => signIn({ returnTo }).catch(setError)}>Sign in</Button>
        </Stack>
      </Paper>
    </Center>
  );
}
