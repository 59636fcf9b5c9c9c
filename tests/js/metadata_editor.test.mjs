// node --test tests/js/ (scripts/test.sh runs it): the labeling page's metadata editor rules.
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatValue, parseRows, parseValue } from "../../static/labeling/metadata_editor.js";

test("values keep their JSON type", () => {
  const rows = [
    { key: "count", value: "42" },
    { key: "ratio", value: "-0.5" },
    { key: "checked", value: "true" },
    { key: "rejected", value: "false" },
    { key: "reviewer", value: "null" },
    { key: "box", value: '{"x": 1, "tags": ["a"]}' },
    { key: "note", value: "faint stripes" },
    { key: "code", value: '"42"' },
    { key: "blank", value: "" },
  ];
  assert.deepEqual(parseRows(rows), {
    metadata: { count: 42, ratio: -0.5, checked: true, rejected: false, reviewer: null, box: { x: 1, tags: ["a"] }, note: "faint stripes", code: "42", blank: "" },
    errors: [],
  });
});

test("every stored value is shown as text that reads back as the same value", () => {
  for (const value of [42, 0, true, false, null, "42", "true", "null", "faint", "", '"quoted"', { a: [1, "b"] }, [1, 2], " 7 "]) {
    assert.deepEqual(parseValue(formatValue(value)), value, JSON.stringify(value));
  }
  assert.equal(formatValue("faint"), "faint");
  assert.equal(formatValue("42"), '"42"');
});

test("a key given twice is refused with a message, not dropped", () => {
  const { metadata, errors } = parseRows([{ key: "note", value: "a" }, { key: "other", value: "1" }, { key: "note", value: "b" }]);
  assert.deepEqual(errors, [{ row: 2, field: "key", message: "“note” is given twice (rows 1 and 3): keep one." }]);
  assert.deepEqual(metadata, { note: "a", other: 1 });
});

test("a value without a key is refused; an unused row is left out", () => {
  const { metadata, errors } = parseRows([{ key: "", value: "" }, { key: "  ", value: "7" }, { key: "n", value: "1" }]);
  assert.deepEqual(errors, [{ row: 1, field: "key", message: "A key cannot be empty: name this value or remove the row." }]);
  assert.deepEqual(metadata, { n: 1 });
});

test("keys are kept as typed", () => {
  assert.deepEqual(parseRows([{ key: "Note", value: "x" }, { key: "note", value: "y" }]).metadata, { Note: "x", note: "y" });
});
