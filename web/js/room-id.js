// Room links. A link id is 36 base32 characters (180 random bits from crypto.getRandomValues).
// Its first 52 bits name the SFU room (a number, as the VideoRoom's default numeric ids need) and
// the chat room (that number's decimal text, as the Recorder's transcript matches them); those
// two are not secret: the chat plugin's `list` shows chat rooms. The whole id is the rooms' pin
// (and the SFU room's secret), so joining needs the link: its other 128 bits are never listed.

export const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford's base32, lower case
export const ID_LENGTH = 36;

/** A fresh link id. */
export function newRoomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(ID_LENGTH));
  // 256 is a multiple of 32, so each byte's low five bits are uniform.
  return Array.from(bytes, (b) => ALPHABET[b & 31]).join("");
}

/** The link id in a pasted link or id, normalised, or null when there is none. */
export function parseRoomInput(text) {
  let s = String(text || "").trim();
  const inLink = s.match(/\/r\/([^/?#\s]+)/);
  if (inLink) s = inLink[1];
  s = s.toLowerCase().replace(/[\s-]/g, "").replace(/[io]/g, (c) => (c === "o" ? "0" : "1")).replace(/l/g, "1");
  if (s.length !== ID_LENGTH) return null;
  for (const c of s) if (!ALPHABET.includes(c)) return null;
  return s;
}

/** What the plugins need: {sfuRoom: number, chatRoom: string, pin: string}. */
export function roomKeys(id) {
  let n = 0n;
  for (const c of id) n = (n << 5n) | BigInt(ALPHABET.indexOf(c));
  let sfuRoom = Number(n >> 128n); // the top 52 of 180 bits: below 2^53, exact in a double
  if (sfuRoom === 0) sfuRoom = 1;
  return { sfuRoom, chatRoom: String(sfuRoom), pin: id };
}
