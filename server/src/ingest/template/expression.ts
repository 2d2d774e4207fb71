import { compileJmesPath } from './jmespath.ts';
import { compileJsonPath } from './jsonpath.ts';

/** A template expression in either language, with MedTech's token semantics. */

export type Language = 'JsonPath' | 'JmesPath';

export interface Expression {
  readonly source: string;
  readonly language: Language;
  /** Every matched token: a JSONPath match list, or a JMESPath projection's items (else its one non-null result). */
  selectAll(data: unknown): unknown[];
  /** The single token, or undefined when nothing matched; throws when several tokens match. */
  selectOne(data: unknown): unknown;
}

/** Throws a SyntaxError describing the problem when the expression does not compile. */
export function compileExpression(source: string, language: Language): Expression {
  if (language === 'JsonPath') {
    const path = compileJsonPath(source);
    return {
      source,
      language,
      selectAll: (data) => path.select(data),
      selectOne: (data) => single(path.select(data)),
    };
  }
  const query = compileJmesPath(source);
  const selectAll = (data: unknown): unknown[] => {
    const result = query.evaluate(data);
    if (query.projects && Array.isArray(result)) return result;
    return result === null ? [] : [result];
  };
  return {
    source,
    language,
    selectAll,
    selectOne: (data) => (query.projects ? single(selectAll(data)) : (query.evaluate(data) ?? undefined)),
  };
}

function single(tokens: unknown[]): unknown {
  if (tokens.length > 1) throw new RangeError(`matched ${tokens.length} values where one was expected`);
  return tokens[0];
}
