// The metadata editor's rules, without the DOM (imported by label_page.js, tested with `node --test`
// in tests/js/). A value is typed as JSON when it reads as JSON (42, true, null,
// {"a": 1}, "quoted text"), else it is the text itself; keys are refused, not dropped, when empty
// or given twice.

// The text to show for a stored value, which `parseValue` reads back as the same value: a string
// is shown as it is unless it would read as something else ("42", "true"), then with its quotes.
export function formatValue(value) {
  if (typeof value !== "string") return JSON.stringify(value);
  return parseValue(value) === value ? value : JSON.stringify(value);
}

export function parseValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// rows: [{key, value}] as typed. Returns {metadata, errors: [{row, field, message}]}; a row with
// neither a key nor a value is an unused row and is left out.
export function parseRows(rows) {
  const metadata = {};
  const errors = [];
  const firstRow = new Map();
  rows.forEach(({ key, value }, row) => {
    if (key.trim() === "") {
      if (value.trim() !== "") errors.push({ row, field: "key", message: "A key cannot be empty: name this value or remove the row." });
      return;
    }
    if (firstRow.has(key)) {
      errors.push({ row, field: "key", message: `“${key}” is given twice (rows ${firstRow.get(key) + 1} and ${row + 1}): keep one.` });
      return;
    }
    firstRow.set(key, row);
    metadata[key] = parseValue(value);
  });
  return { metadata, errors };
}
