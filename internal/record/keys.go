package record

// Keys is a small set of keys, the skip set of Fields.Parse and Find: the
// keys a record already has. It holds views, not copies; they must stay
// valid while the set is in use. Reset and Add reuse its array, so a Keys
// kept across events does not allocate.
type Keys struct {
	keys [][]byte
	mask uint64 // keyBit of every key: most misses cost one test
}

// NewKeys returns a set of fixed keys, for a set built once and shared
// read-only.
func NewKeys(keys ...string) *Keys {
	k := &Keys{keys: make([][]byte, len(keys))}
	for i, s := range keys {
		k.keys[i] = []byte(s)
		k.mask |= keyBit(k.keys[i])
	}
	return k
}

// Reset empties the set, keeping its array.
func (k *Keys) Reset() { k.keys, k.mask = k.keys[:0], 0 }

// Add adds key (a view: it is not copied).
func (k *Keys) Add(key []byte) {
	k.keys = append(k.keys, key)
	k.mask |= keyBit(key)
}

// Has reports whether key is in the set. A nil set is empty.
func (k *Keys) Has(key []byte) bool {
	if k == nil || k.mask&keyBit(key) == 0 {
		return false
	}
	for _, x := range k.keys {
		if string(x) == string(key) {
			return true
		}
	}
	return false
}

// keyBit maps a key to one of 64 bits (from its length and its first and
// last bytes), a one-word Bloom filter for sets of keys.
func keyBit(k []byte) uint64 {
	if len(k) == 0 {
		return 1
	}
	return 1 << ((uint(len(k)) + 7*uint(k[0]) + 3*uint(k[len(k)-1])) & 63)
}
