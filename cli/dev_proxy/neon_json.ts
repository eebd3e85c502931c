/**
 * JSON <-> Postgres text conversions of Neon's proxy (proxy/src/serverless/json.rs), kept apart
 * from the endpoint because the driver never needs them: it sends only strings and nulls and asks
 * for raw text output. Other HTTP clients may rely on them.
 *
 * @module
 */

/**
 * A JSON parameter as Postgres text: arrays become array literals, other non-strings JSON.
 *
 * @param value One element of a request's `params`.
 * @returns The text to bind, or null.
 */
export function jsonToPgText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return jsonToPgArray(value);
  return JSON.stringify(value);
}

function jsonToPgArray(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (Array.isArray(value)) return `{${value.map(jsonToPgArray).join(",")}}`;
  if (typeof value === "object") return JSON.stringify(JSON.stringify(value));
  return JSON.stringify(value);
}

// Neon converts these types when Neon-Raw-Text-Output is not "true"; other values stay text.
const ARRAY_ELEMENT_TYPES: Record<number, number> = {
  1000: 16,
  1005: 21,
  1007: 23,
  1016: 20,
  1021: 700,
  1022: 701,
  199: 114,
  3807: 3802,
  1009: 25,
  1015: 1043,
};

/**
 * A Postgres text value as JSON, converted by type as Neon does without raw text output.
 *
 * @param text The value's text form.
 * @param typeId The column's type OID.
 * @returns A boolean, number, parsed JSON, array, or the text unchanged.
 */
export function textToJson(text: string, typeId: number): unknown {
  const element: number | undefined = ARRAY_ELEMENT_TYPES[typeId];
  if (element !== undefined) return parsePgArray(text, element);
  switch (typeId) {
    case 16:
      return text === "t";
    case 21:
    case 23:
      return Number.parseInt(text, 10);
    // NaN and infinities stay strings, as in Neon: JSON has no way to carry them.
    case 700:
    case 701:
      return Number.isFinite(Number(text)) ? Number(text) : text;
    case 114:
    case 3802:
      return JSON.parse(text) as unknown;
    default:
      return text;
  }
}

/** Postgres array text to nested JSON arrays, elements converted like scalars. */
function parsePgArray(text: string, element: number): unknown[] {
  let i: number = text.startsWith("[") ? text.indexOf("=") + 1 : 0;
  function list(): unknown[] {
    const out: unknown[] = [];
    i += 1; // "{"
    while (i < text.length && text[i] !== "}") {
      if (text[i] === ",") i += 1;
      else if (text[i] === "{") out.push(list());
      else if (text[i] === '"') {
        let item: string = "";
        for (i += 1; i < text.length && text[i] !== '"'; i += 1) item += text[i] === "\\" ? text[++i] : text[i];
        i += 1;
        out.push(textToJson(item, element));
      } else {
        const found: number = text.slice(i).search(/[,}]/);
        const end: number = found < 0 ? text.length : found + i;
        const item: string = text.slice(i, end).trim();
        out.push(item === "NULL" ? null : textToJson(item, element));
        i = end;
      }
    }
    i += 1; // "}"
    return out;
  }
  return list();
}
