/** A mapping that cannot be used, pointing at the template and field to fix. */
export class MappingError extends Error {
  /** e.g. "deviceMapping.template[2]", or "mapping" for the top level. */
  readonly template: string;
  /** e.g. "typeMatchExpression" or "components[1].value.valueType". */
  readonly field: string;

  constructor(template: string, field: string, message: string) {
    super(`${template}${field ? `.${field}` : ''}: ${message}`);
    this.name = 'MappingError';
    this.template = template;
    this.field = field;
  }
}
