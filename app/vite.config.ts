import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// `npm run dev` proxies the API to a Vigil on :8103; the production build is served by Vigil itself.
const api = { target: 'http://localhost:8103', ws: true };

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    chunkSizeWarningLimit: 1500,
  },
  server: { proxy: { '/fhir': api, '/oauth2': api, '/auth': api, '/interaction': api } },
});
