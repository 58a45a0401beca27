package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/braid-bft/braid/ledger"
)

// MaxResponseBytes bounds what Client reads of one answer: a range of
// MaxRangeBytes of blocks, base64 and JSON around it, with room to spare.
const MaxResponseBytes = 4 * MaxRangeBytes

// Client reads one replica's API (braid status, ledger show and verify).
type Client struct {
	base string
	http *http.Client
}

// NewClient is a client of the API at addr (host:port, as http_addr has
// it). hc nil means a client with no timeout of its own: bound calls with
// their context.
func NewClient(addr string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: "http://" + addr, http: hc}
}

// APIError is an error answer: the status code and the API's message.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// IsNotFound says err is the API's 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == http.StatusNotFound
}

// get fetches path and decodes a JSON answer into v, or the error answer
// into an *APIError.
func (c *Client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: reading the answer: %w", path, err)
	}
	if len(body) > MaxResponseBytes {
		return fmt.Errorf("GET %s: answer exceeds %d bytes", path, MaxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = truncate(string(body), 200)
		}
		return &APIError{Code: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decoding the answer: %w", path, err)
	}
	return nil
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.get(ctx, PathStatus, &s)
	return s, err
}

// Block is GET /v1/blocks/{height}.
func (c *Client) Block(ctx context.Context, h uint64) (Block, error) {
	var b Block
	err := c.get(ctx, PathBlocks+"/"+strconv.FormatUint(h, 10), &b)
	return b, err
}

// Blocks is GET /v1/blocks?from=A&to=B; the answer may stop short of to
// (see Blocks.To).
func (c *Client) Blocks(ctx context.Context, from, to uint64) (Blocks, error) {
	var bs Blocks
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	err := c.get(ctx, PathBlocks+"?"+q.Encode(), &bs)
	if err == nil && (bs.From != from || bs.To < from-1 || bs.To > to || uint64(len(bs.Blocks)) != bs.To-from+1) {
		err = fmt.Errorf("GET %s: answer for blocks %d to %d holds %d blocks, %d to %d", PathBlocks, from, to, len(bs.Blocks), bs.From, bs.To)
	}
	return bs, err
}

// Ledger is the replica's ledger as a ledger.Source, up to the height it
// has now (a running ledger grows; Verify checks this prefix of it). It
// fetches MaxRange blocks at a time, as Verify asks for them in order.
func (c *Client) Ledger(ctx context.Context) (ledger.Source, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	return &remote{c: c, ctx: ctx, height: st.Height}, nil
}

// ErrFetch wraps the errors of a Ledger source that come from asking the
// replica (network, error answers) rather than from what it served: a
// verifier reports those as a failed check, not as a broken ledger.
var ErrFetch = errors.New("fetching blocks from the replica")

// remote is a ledger.Source over HTTP with the last fetched range cached.
type remote struct {
	c      *Client
	ctx    context.Context
	height uint64
	from   uint64 // cached: blocks[i] is height from+i
	blocks []*ledger.Block
	certs  []*ledger.Certificate
}

func (r *remote) Height() (uint64, error) { return r.height, nil }

func (r *remote) load(h uint64) (int, error) {
	if h == 0 || h > r.height {
		return 0, fmt.Errorf("no block at height %d (the ledger read has heights 1 to %d)", h, r.height)
	}
	if h >= r.from && h < r.from+uint64(len(r.blocks)) {
		return int(h - r.from), nil
	}
	bs, err := r.c.Blocks(r.ctx, h, min(h+MaxRange-1, r.height))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if len(bs.Blocks) == 0 {
		return 0, fmt.Errorf("the replica returned no block for height %d", h)
	}
	blocks := make([]*ledger.Block, 0, len(bs.Blocks))
	certs := make([]*ledger.Certificate, 0, len(bs.Blocks))
	for i := range bs.Blocks {
		b, c, err := bs.Blocks[i].Ledger()
		if err != nil {
			return 0, err
		}
		blocks, certs = append(blocks, b), append(certs, c)
	}
	r.from, r.blocks, r.certs = h, blocks, certs
	return 0, nil
}

func (r *remote) Block(h uint64) (*ledger.Block, error) {
	i, err := r.load(h)
	if err != nil {
		return nil, err
	}
	return r.blocks[i], nil
}

func (r *remote) Certificate(h uint64) (*ledger.Certificate, error) {
	i, err := r.load(h)
	if err != nil {
		return nil, err
	}
	return r.certs[i], nil
}
