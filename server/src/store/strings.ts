/** Case- and accent-insensitive form used for string search (FHIR's default string matching). */
export function normalizeString(value: string): string {
  return value.normalize('NFD').replace(/\p{Diacritic}/gu, '').toLowerCase();
}
