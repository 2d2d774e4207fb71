import { Alert, Button, Center, Loader, Stack, Text } from '@mantine/core';
import { normalizeErrorString } from '@medplum/core';
import { IconAlertTriangle } from '@tabler/icons-react';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <Center py="xl" role="status" aria-live="polite">
      <Stack align="center" gap="xs">
        <Loader size="sm" />
        <Text size="sm" c="dimmed">{label}</Text>
      </Stack>
    </Center>
  );
}

/** A failed request, said plainly, with a way to try again. */
export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  return (
    <Alert color="red" icon={<IconAlertTriangle aria-hidden />} title="Something went wrong" role="alert">
      <Stack gap="xs" align="flex-start">
        <Text size="sm">{describeError(error)}</Text>
        {retry && <Button size="xs" color="red.9" onClick={retry}>Try again</Button>}
      </Stack>
    </Alert>
  );
}

export function describeError(error: unknown): string {
  const text = normalizeErrorString(error);
  return /not found|forbidden|gone/i.test(text) ? 'This record is not available to you.' : text;
}
