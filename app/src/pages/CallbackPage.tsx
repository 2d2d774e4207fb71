import { Button, Center, Stack } from '@mantine/core';
import { useEffect, useRef, useState } from 'react';
import { completeSignIn } from '../auth/smart.ts';
import { ErrorState, Loading } from '../components/LoadState.tsx';

/** The authorization server's redirect: exchange the code, then a full load of the page asked for. */
export function CallbackPage() {
  const [error, setError] = useState<unknown>();
  const started = useRef(false);
  useEffect(() => {
    // once only: a code can be exchanged once (StrictMode runs effects twice in development)
    if (started.current) return;
    started.current = true;
    completeSignIn(new URL(window.location.href)).then((to) => window.location.replace(to), setError);
  }, []);
  if (error === undefined) return <Loading label="Signing in…" />;
  return (
    <Center mih="100vh" p="md">
      <Stack maw={480}>
        <ErrorState error={error} />
        <Button component="a" href="/">Back to sign in</Button>
      </Stack>
    </Center>
  );
}
