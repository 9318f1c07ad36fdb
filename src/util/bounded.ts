/** A small helper for the bounded caches kept in `Map`s (insertion order is age order). */

/** Set `key` in `map`, first dropping the oldest entry when the map holds `max` already. */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (map.size >= max) map.delete(map.keys().next().value as K);
  map.set(key, value);
}
