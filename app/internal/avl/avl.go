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
// Clone is O(1): the two trees share every node, and whichever of them is
// written next copies the nodes on the path it changes (path copying) and
// none other. A tree that was never cloned writes in place, so the common
// case costs no more than a plain AVL tree. That is what lets a replica
// snapshot a large state without stopping — it clones, keeps executing on
// one copy and encodes the other elsewhere — and stage a state transfer
// without copying the state first.
//
// Not safe for concurrent mutation; concurrent readers are fine, also of a
// clone while the original is written.
package avl

import "bytes"

type node[V any] struct {
	key         []byte
	val         V
	left, right *node[V]
	height      int32
	owner       *token // the tree that may write this node in place
}

// token identifies a tree for write ownership. It is not zero-sized, so
// every new token has its own address.
type token struct{ _ byte }

// Tree is an ordered map. The zero value is an empty tree.
type Tree[V any] struct {
	root  *node[V]
	size  int
	owner *token // nil until the first write
}

// Clone returns a tree with the same entries in O(1). Afterwards neither
// tree's writes are seen by the other.
func (t *Tree[V]) Clone() *Tree[V] {
	t.owner = new(token) // every node is shared now: both trees copy on write
	return &Tree[V]{root: t.root, size: t.size, owner: new(token)}
}

// own returns n if t may write it in place, else a copy t may write. A node
// t owns is reached only through nodes t owns (every write copies the path
// from the root down to it), so writing an owned node in place never
// changes what a clone sees.
func (t *Tree[V]) own(n *node[V]) *node[V] {
	if n.owner == t.token() {
		return n
	}
	c := *n
	c.owner = t.owner
	return &c
}

func (t *Tree[V]) newNode(key []byte, v V) *node[V] {
	return &node[V]{key: key, val: v, height: 1, owner: t.token()}
}

// token is t's write token, made on first use (the zero Tree has none).
func (t *Tree[V]) token() *token {
	if t.owner == nil {
		t.owner = new(token)
	}
	return t.owner
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
		old = n.val
		if n.owner == t.token() {
			n.val = v
		} else {
			t.root = t.replace(t.root, key, v)
		}
		return old, true
	}
	t.root = t.insert(t.root, key, v)
	t.size++
	return old, false
}

// replace sets the value of a key known to be present, copying the path to
// it.
func (t *Tree[V]) replace(n *node[V], key []byte, v V) *node[V] {
	n = t.own(n)
	switch c := bytes.Compare(key, n.key); {
	case c < 0:
		n.left = t.replace(n.left, key, v)
	case c > 0:
		n.right = t.replace(n.right, key, v)
	default:
		n.val = v
	}
	return n
}

// Delete removes key, returning its value if it was present.
func (t *Tree[V]) Delete(key []byte) (old V, deleted bool) {
	n := t.find(key)
	if n == nil {
		return old, false
	}
	old = n.val
	t.root = t.remove(t.root, key)
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
	t := &Tree[V]{size: len(keys)}
	t.root = t.build(keys, vals)
	return t
}

func (t *Tree[V]) build(keys [][]byte, vals []V) *node[V] {
	if len(keys) == 0 {
		return nil
	}
	m := len(keys) / 2
	n := t.newNode(keys[m], vals[m])
	n.left = t.build(keys[:m], vals[:m])
	n.right = t.build(keys[m+1:], vals[m+1:])
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

// The rebalancing helpers take a node t already owns and copy any other
// node before they change it.

func (t *Tree[V]) rotateRight(n *node[V]) *node[V] {
	l := t.own(n.left)
	n.left = l.right
	l.right = n
	fix(n)
	fix(l)
	return l
}

func (t *Tree[V]) rotateLeft(n *node[V]) *node[V] {
	r := t.own(n.right)
	n.right = r.left
	r.left = n
	fix(n)
	fix(r)
	return r
}

func (t *Tree[V]) rebalance(n *node[V]) *node[V] {
	fix(n)
	switch bf := height(n.left) - height(n.right); {
	case bf > 1:
		if height(n.left.left) < height(n.left.right) {
			n.left = t.rotateLeft(t.own(n.left))
		}
		return t.rotateRight(n)
	case bf < -1:
		if height(n.right.right) < height(n.right.left) {
			n.right = t.rotateRight(t.own(n.right))
		}
		return t.rotateLeft(n)
	}
	return n
}

// insert adds a key known to be absent.
func (t *Tree[V]) insert(n *node[V], key []byte, v V) *node[V] {
	if n == nil {
		return t.newNode(key, v)
	}
	n = t.own(n)
	if bytes.Compare(key, n.key) < 0 {
		n.left = t.insert(n.left, key, v)
	} else {
		n.right = t.insert(n.right, key, v)
	}
	return t.rebalance(n)
}

// remove deletes a key known to be present.
func (t *Tree[V]) remove(n *node[V], key []byte) *node[V] {
	n = t.own(n)
	switch c := bytes.Compare(key, n.key); {
	case c < 0:
		n.left = t.remove(n.left, key)
	case c > 0:
		n.right = t.remove(n.right, key)
	default:
		if n.left == nil {
			return n.right
		}
		if n.right == nil {
			return n.left
		}
		var m *node[V]
		n.right, m = t.removeMin(n.right)
		m = t.own(m)
		m.left, m.right = n.left, n.right
		n = m
	}
	return t.rebalance(n)
}

// removeMin detaches the smallest node of n's subtree; it returns the rest
// and that node (not yet owned: the caller copies it before changing it).
func (t *Tree[V]) removeMin(n *node[V]) (rest, min *node[V]) {
	if n.left == nil {
		return n.right, n
	}
	n = t.own(n)
	n.left, min = t.removeMin(n.left)
	return t.rebalance(n), min
}
