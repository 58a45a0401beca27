// Package avl is an ordered map from byte-string keys to values, implemented
// as an AVL tree. Applications use it instead of a Go map because replicated
// output (scans, snapshots) must follow a deterministic key order, and
// instead of a sorted slice so that inserts and deletes stay O(log n) in the
// worst case. Unlike a skiplist or treap with hash-derived levels, an AVL
// tree's worst case cannot be forced by clients choosing keys.
//
// The tree's shape depends on operation history, but nothing observable
// does: every read and iteration is by key order only.
//
// Not safe for concurrent mutation; concurrent readers are fine.
package avl

import "bytes"

type node[V any] struct {
	key         []byte
	val         V
	left, right *node[V]
	height      int32
}

// Tree is an ordered map. The zero value is an empty tree.
type Tree[V any] struct {
	root *node[V]
	size int
}

// Len returns the number of entries.
func (t *Tree[V]) Len() int { return t.size }

func (t *Tree[V]) find(key []byte) *node[V] {
	n := t.root
	for n != nil {
		switch c := bytes.Compare(key, n.key); {
		case c < 0:
			n = n.left
		case c > 0:
			n = n.right
		default:
			return n
		}
	}
	return nil
}

// Get returns the value stored under key.
func (t *Tree[V]) Get(key []byte) (V, bool) {
	if n := t.find(key); n != nil {
		return n.val, true
	}
	var zero V
	return zero, false
}

// Set stores v under key, returning the previous value if there was one.
// The tree retains key (when inserting); the caller must not modify it
// afterwards.
func (t *Tree[V]) Set(key []byte, v V) (old V, replaced bool) {
	if n := t.find(key); n != nil {
		old, n.val = n.val, v
		return old, true
	}
	t.root = insert(t.root, key, v)
	t.size++
	return old, false
}

// Delete removes key, returning its value if it was present.
func (t *Tree[V]) Delete(key []byte) (old V, deleted bool) {
	n := t.find(key)
	if n == nil {
		return old, false
	}
	old = n.val
	t.root = remove(t.root, key)
	t.size--
	return old, true
}

// Ascend calls fn for each entry with key ≥ start, in ascending key order,
// until fn returns false. A nil or empty start begins at the smallest key.
// fn must not mutate the tree.
func (t *Tree[V]) Ascend(start []byte, fn func(key []byte, v V) bool) {
	// Explicit stack of ancestors whose key is ≥ start and not yet visited.
	// AVL height ≤ 1.44·log2(n+2), so 64 covers any tree that fits in memory
	// without the slice growing.
	stack := make([]*node[V], 0, 64)
	for n := t.root; n != nil; {
		if bytes.Compare(n.key, start) >= 0 {
			stack = append(stack, n)
			n = n.left
		} else {
			n = n.right
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !fn(n.key, n.val) {
			return
		}
		for c := n.right; c != nil; c = c.left {
			stack = append(stack, c)
		}
	}
}

// BuildSorted returns a perfectly balanced tree holding keys[i] → vals[i].
// keys must be strictly ascending (callers validate this; Restore paths
// reject unsorted input before calling) and len(vals) == len(keys).
func BuildSorted[V any](keys [][]byte, vals []V) *Tree[V] {
	return &Tree[V]{root: build(keys, vals), size: len(keys)}
}

func build[V any](keys [][]byte, vals []V) *node[V] {
	if len(keys) == 0 {
		return nil
	}
	m := len(keys) / 2
	n := &node[V]{key: keys[m], val: vals[m]}
	n.left = build(keys[:m], vals[:m])
	n.right = build(keys[m+1:], vals[m+1:])
	fix(n)
	return n
}

func height[V any](n *node[V]) int32 {
	if n == nil {
		return 0
	}
	return n.height
}

func fix[V any](n *node[V]) {
	n.height = 1 + max(height(n.left), height(n.right))
}

func rotateRight[V any](n *node[V]) *node[V] {
	l := n.left
	n.left = l.right
	l.right = n
	fix(n)
	fix(l)
	return l
}

func rotateLeft[V any](n *node[V]) *node[V] {
	r := n.right
	n.right = r.left
	r.left = n
	fix(n)
	fix(r)
	return r
}

func rebalance[V any](n *node[V]) *node[V] {
	fix(n)
	switch bf := height(n.left) - height(n.right); {
	case bf > 1:
		if height(n.left.left) < height(n.left.right) {
			n.left = rotateLeft(n.left)
		}
		return rotateRight(n)
	case bf < -1:
		if height(n.right.right) < height(n.right.left) {
			n.right = rotateRight(n.right)
		}
		return rotateLeft(n)
	}
	return n
}

// insert adds a key known to be absent.
func insert[V any](n *node[V], key []byte, v V) *node[V] {
	if n == nil {
		return &node[V]{key: key, val: v, height: 1}
	}
	if bytes.Compare(key, n.key) < 0 {
		n.left = insert(n.left, key, v)
	} else {
		n.right = insert(n.right, key, v)
	}
	return rebalance(n)
}

// remove deletes a key known to be present.
func remove[V any](n *node[V], key []byte) *node[V] {
	switch c := bytes.Compare(key, n.key); {
	case c < 0:
		n.left = remove(n.left, key)
	case c > 0:
		n.right = remove(n.right, key)
	default:
		if n.left == nil {
			return n.right
		}
		if n.right == nil {
			return n.left
		}
		var m *node[V]
		n.right, m = removeMin(n.right)
		m.left, m.right = n.left, n.right
		n = m
	}
	return rebalance(n)
}

func removeMin[V any](n *node[V]) (rest, min *node[V]) {
	if n.left == nil {
		return n.right, n
	}
	n.left, min = removeMin(n.left)
	return rebalance(n), min
}
