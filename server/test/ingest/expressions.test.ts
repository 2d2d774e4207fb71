import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import jmespath from 'jmespath';
import { compileExpression } from '../../src/ingest/template/expression.ts';
import { compileJmesPath } from '../../src/ingest/template/jmespath.ts';

const jsonPath = (source: string, data: unknown) => compileExpression(source, 'JsonPath').selectAll(data);
const jmes = (source: string, data: unknown) => compileExpression(source, 'JmesPath').selectOne(data);

const MESSAGE = {
  Body: { heartRate: '78', systolic: 120, diastolic: 80, endDate: '2019-02-01T22:46:01.8750000Z', deviceId: 'device123' },
  Properties: { 'iothub-creation-time-utc': '2019-02-01T22:46:01Z' },
  SystemProperties: { 'iothub-connection-device-id': 'device123' },
  readings: [{ v: 1 }, { v: 2 }, { v: 3 }, { w: 4 }],
};

describe('JSONPath (Json.NET dialect)', () => {
  test('a scan filter tests each node itself, the root included', () => {
    assert.deepEqual(jsonPath('$..[?(@heartRate)]', MESSAGE), [MESSAGE.Body]);
    assert.deepEqual(jsonPath('$..[?(@.heartRate)]', { heartRate: 72 }), [{ heartRate: 72 }]);
    assert.deepEqual(jsonPath('$..[?(@Body.heartRate)]', MESSAGE), [MESSAGE]);
  });

  test('a plain filter tests the children', () => {
    assert.deepEqual(jsonPath('$.readings[?(@.v >= 2)]', MESSAGE), [{ v: 2 }, { v: 3 }]);
    assert.deepEqual(jsonPath('$[?(@.heartRate)]', MESSAGE), [MESSAGE.Body]);
  });

  test('filters: && || parentheses, strings in either quote, no string/number coercion', () => {
    assert.deepEqual(jsonPath('$..[?(@.systolic && @.diastolic)]', MESSAGE), [MESSAGE.Body]);
    assert.deepEqual(jsonPath("$.readings[?(@.v == 1 || (@.w == 4 && @.w != 'x'))]", MESSAGE), [{ v: 1 }, { w: 4 }]);
    assert.deepEqual(jsonPath('$..[?(@.heartRate == "78")]', MESSAGE), [MESSAGE.Body]);
    assert.deepEqual(jsonPath('$..[?(@.heartRate == 78)]', MESSAGE), []);
    assert.deepEqual(jsonPath('$..[?(@.deviceId === $.SystemProperties.iothub-connection-device-id)]', MESSAGE), [MESSAGE.Body]);
  });

  test('member names: unquoted with hyphens, quoted, unions; own properties only', () => {
    assert.deepEqual(jsonPath('$.SystemProperties.iothub-connection-device-id', MESSAGE), ['device123']);
    assert.deepEqual(jsonPath("$['SystemProperties']['iothub-connection-device-id']", MESSAGE), ['device123']);
    assert.deepEqual(jsonPath("$.Body['systolic','diastolic']", MESSAGE), [120, 80]);
    assert.deepEqual(jsonPath('Body.deviceId', MESSAGE), ['device123']);
    assert.deepEqual(jsonPath('$.Body.constructor', MESSAGE), []);
    assert.deepEqual(jsonPath('$..[?(@.toString)]', MESSAGE), []);
  });

  test('indexes, slices, wildcards and scans in document order', () => {
    assert.deepEqual(jsonPath('$.readings[0,2].v', MESSAGE), [1, 3]);
    assert.deepEqual(jsonPath('$.readings[-2:]', MESSAGE), [{ v: 3 }, { w: 4 }]);
    assert.deepEqual(jsonPath('$.readings[::2]', MESSAGE), [{ v: 1 }, { v: 3 }]);
    assert.deepEqual(jsonPath('$.readings[*].v', MESSAGE), [1, 2, 3]);
    assert.deepEqual(jsonPath('$..v', { v: 0, a: { v: 1, b: [{ v: 2 }] } }), [0, 1, 2]);
    assert.deepEqual(jsonPath('$.Body.*', { Body: { a: 1, b: 2 } }), [1, 2]);
  });

  test('syntax errors are found at compile time', () => {
    for (const bad of ['', '$[', '$.a[?(@.x ==)]', "$['a", '$.a[-1]', '$.a[?(@.x =~ /y/)]', '$.a[::0]', '@.a', '$.a[?(1 == 1) ]x']) {
      assert.throws(() => compileExpression(bad, 'JsonPath'), SyntaxError, bad);
    }
  });

  test('selectOne refuses several matches', () => {
    assert.throws(() => compileExpression('$.readings[*].v', 'JsonPath').selectOne(MESSAGE), /matched 3 values/);
    assert.equal(compileExpression('$.missing', 'JsonPath').selectOne(MESSAGE), undefined);
  });
});

describe('JMESPath', () => {
  test("MedTech's custom functions", () => {
    assert.equal(jmes('add(`10`, `10`)', {}), 20);
    assert.equal(jmes('subtract(left, right)', { left: 40, right: 50 }), -10);
    assert.equal(jmes('multiply(left, right)', { left: 40, right: 50 }), 2000);
    assert.equal(jmes('divide(left, right)', { left: 40, right: 50 }), 0.8);
    assert.equal(jmes('pow(`100`, `0.5`)', {}), 10);
    assert.equal(jmes('insertString(original, toInsert, pos)', { original: 'suess', toInsert: 'cc', pos: 2 }), 'success');
    assert.equal(jmes('fromUnixTimestamp(unix)', { unix: 1625677200 }), '2021-07-07T17:00:00.000Z');
    assert.equal(jmes('fromUnixTimestampMs(unix)', { unix: 1626799080000 }), '2021-07-20T16:38:00.000Z');
    assert.equal(jmes('fromUnixTimestamp(`0`)', {}), '1970-01-01T00:00:00.000Z');
  });

  test('function errors throw (and become rejections upstream)', () => {
    assert.throws(() => jmes('divide(`50`, `0`)', {}), /division by zero/);
    assert.throws(() => jmes('pow(`40`, `5000`)', {}), /not a finite number/);
    assert.throws(() => jmes("add(a, 'x')", { a: 1 }), /argument 2 must be a number, got string/);
    assert.throws(() => jmes('insertString(`"ab"`, `"x"`, `5`)', {}), /out of range/);
    assert.throws(() => jmes('fromUnixTimestampMs(`1e20`)', {}), /outside the representable date range/);
  });

  test('unknown functions and wrong arity are compile errors', () => {
    assert.throws(() => compileExpression('nope(a)', 'JmesPath'), /unknown function nope\(\)/);
    assert.throws(() => compileExpression('add(a)', 'JmesPath'), /add\(\) takes 2 argument/);
    assert.throws(() => compileExpression('toString(a)', 'JmesPath'), /unknown function/);
    assert.throws(() => compileExpression('a[', 'JmesPath'), SyntaxError);
  });

  test('projections yield one token per item; plain arrays are one token', () => {
    const data = { Body: [{ hr: 1 }, { x: 2 }, { hr: 3 }] };
    assert.deepEqual(compileExpression('Body[?hr]', 'JmesPath').selectAll(data), [{ hr: 1 }, { hr: 3 }]);
    assert.deepEqual(compileExpression('Body', 'JmesPath').selectAll(data), [data.Body]);
    assert.deepEqual(compileExpression('[Body][?contains(keys(@), `"hr"`)] | @[0]', 'JmesPath').selectAll({ Body: { hr: 1 } }), [{ hr: 1 }]);
    assert.deepEqual(compileExpression('missing', 'JmesPath').selectAll(data), []);
    assert.throws(() => compileExpression('Body[*].hr', 'JmesPath').selectOne(data), /matched 2 values/);
  });

  test('built-in functions agree with jmespath.js', () => {
    const data = {
      people: [
        { name: 'b', age: 30, tags: ['x'] },
        { name: 'a', age: 25, tags: [] },
        { name: 'c', age: 35, tags: ['y', 'z'] },
      ],
      nums: [3, 1, 2],
      words: ['b', 'a'],
      obj: { k1: 1, k2: 2 },
      s: 'héllo',
      n: '42.5',
      nested: [[1, 2], [3], 4],
    };
    const expressions = [
      'abs(`-3`)',
      'avg(nums)',
      'ceil(`1.2`)',
      'floor(`1.8`)',
      "contains(s, 'll')",
      'contains(nums, `2`)',
      "ends_with(s, 'lo')",
      "starts_with(s, 'hé')",
      "join(', ', words)",
      'keys(obj)',
      'values(obj)',
      'length(s)',
      'length(people)',
      'map(&name, people)',
      'max(nums)',
      'min(words)',
      'max_by(people, &age).name',
      'min_by(people, &age).name',
      'merge(obj, `{"k3": 3}`)',
      'not_null(missing, n)',
      'reverse(nums)',
      'sort(words)',
      'sort_by(people, &age)[*].name',
      'sum(nums)',
      'to_array(n)',
      'to_string(nums)',
      'to_number(n)',
      'type(obj)',
      'people[?age > `26`].name',
      'people[?length(tags) == `0`] | [0].name',
      'people[*].tags[]',
      'nested[]',
      'obj.*',
      '{first: people[0].name, count: length(people)}',
      '[people[0].name, nums[-1]]',
      'people[1:].name',
      'nums[::-1]',
      '!contains(words, `"a"`)',
      "n || 'x'",
      'missing && n',
      '`[1, 2]` == `[1, 2]`',
      'people[?name != `"a"`] | length(@)',
    ];
    for (const expression of expressions) {
      const expected = jmespath.search(data, expression);
      assert.deepEqual(compileJmesPath(expression).evaluate(data), expected, expression);
    }
  });
});
