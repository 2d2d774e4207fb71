import { Component, type ReactNode } from 'react';
import { ErrorState } from './LoadState.tsx';

/** A rendering failure shows as an error with a way out, never as a blank page. */
export class ErrorBoundary extends Component<{ children: ReactNode }, { error?: unknown }> {
  state: { error?: unknown } = {};

  static getDerivedStateFromError(error: unknown) {
    return { error };
  }

  render() {
    if (this.state.error !== undefined) return <ErrorState error={this.state.error} retry={() => window.location.reload()} />;
    return this.props.children;
  }
}
