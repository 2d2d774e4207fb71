import { MappingError } from './errors.ts';
import { isPlainObject, type JsonObject } from './json.ts';

/** Typed reads of mapping JSON, each failure a MappingError naming the template and field. */
export class TemplateReader {
  readonly template: string;
  private readonly prefix: string;
  readonly data: JsonObject;

  constructor(template: string, data: JsonObject, prefix = '') {
    this.template = template;
    this.data = data;
    this.prefix = prefix;
  }

  field(name: string): string {
    return this.prefix + name;
  }

  fail(name: string, message: string): never {
    throw new MappingError(this.template, this.field(name), message);
  }

  has(name: string): boolean {
    return this.data[name] !== undefined && this.data[name] !== null;
  }

  string(name: string): string {
    const v = this.data[name];
    if (v === undefined || v === null) this.fail(name, 'is required');
    if (typeof v !== 'string' || v.trim() === '') this.fail(name, 'must be a non-empty string');
    return v;
  }

  optionalString(name: string): string | undefined {
    return this.has(name) ? this.string(name) : undefined;
  }

  number(name: string): number {
    const v = this.data[name];
    if (v === undefined || v === null) this.fail(name, 'is required');
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(name, 'must be a number');
    return v;
  }

  /** MedTech accepts `"required": "true"` as well as a boolean. */
  flag(name: string): boolean {
    const v = this.data[name];
    if (v === undefined || v === null) return false;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
    return this.fail(name, 'must be true or false');
  }

  array(name: string): unknown[] {
    const v = this.data[name];
    if (v === undefined || v === null) this.fail(name, 'is required');
    if (!Array.isArray(v)) this.fail(name, 'must be an array');
    return v;
  }

  /** A nested object, read with field names relative to this template. */
  child(name: string, value: unknown = this.data[name]): TemplateReader {
    if (!isPlainObject(value)) this.fail(name, 'must be an object');
    return new TemplateReader(this.template, value, `${this.field(name)}.`);
  }
}

/** Reads `{ templateType, template: [...] }` collections, as both MedTech mappings are shaped. */
export function readCollection(root: string, value: unknown, collectionType: string): { type: string; reader: TemplateReader }[] {
  if (!isPlainObject(value)) throw new MappingError(root, '', 'must be an object');
  const top = new TemplateReader(root, value);
  if (!sameName(top.string('templateType'), collectionType)) top.fail('templateType', `must be ${collectionType}`);
  return top.array('template').map((entry, i) => {
    const path = `${root}.template[${i}]`;
    if (!isPlainObject(entry)) throw new MappingError(path, '', 'must be an object');
    const outer = new TemplateReader(path, entry);
    const type = outer.string('templateType');
    const template = entry.template;
    if (!isPlainObject(template)) return outer.fail('template', 'must be an object');
    return { type, reader: new TemplateReader(path, template) };
  });
}

/** MedTech matches template and value type names without regard to case. */
export function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
