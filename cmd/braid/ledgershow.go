package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/httpapi"
	"github.com/braid-bft/braid/ledger"
)

// maxShow bounds the blocks one `braid ledger show` holds and prints.
const maxShow = 10000

func runLedgerShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid ledger show", ledgerUsage+"\n", stderr)
	cfgPath := fs.String("config", "", "cluster configuration (required)")
	id := fs.Int("id", -1, "replica whose ledger to show (required)")
	height := fs.Uint64("height", 0, "the block to show (default: the last one)")
	from := fs.Uint64("from", 0, "first block of a range to show")
	to := fs.Uint64("to", 0, "last block of a range to show (at most the ledger's height)")
	asJSON := fs.Bool("json", false, "print the HTTP API's JSON document instead")
	offline := fs.Bool("offline", false, "read the data directory even if the replica answers over HTTP")
	timeout := fs.Duration("timeout", 30*time.Second, "how long reading over HTTP may take")
	if stop, err := parseFlagsOnly(fs, args, "braid ledger"); stop {
		return err
	}
	ranged := *from != 0 || *to != 0
	switch {
	case *cfgPath == "" || *id < 0:
		return errors.New("--config FILE and --id I are required")
	case *height != 0 && ranged:
		return errors.New("give --height H or --from A --to B, not both")
	case ranged && (*from == 0 || *to == 0):
		return errors.New("a range needs both --from A and --to B (heights start at 1)")
	case ranged && *to < *from:
		return fmt.Errorf("--to %d is below --from %d", *to, *from)
	case ranged && *to-*from >= maxShow:
		return fmt.Errorf("--from %d --to %d is %d blocks; show at most %d at a time", *from, *to, *to-*from+1, maxShow)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *id >= cfg.N {
		return fmt.Errorf("--id %d: the cluster has replicas 0 to %d", *id, cfg.N-1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rd, closeReader, err := openBlockReader(ctx, cfg, *id, *offline, stderr)
	if err != nil {
		return err
	}
	defer closeReader()
	if !ranged {
		h := *height
		if h == 0 {
			if h, err = rd.height(ctx); err != nil {
				return err
			}
			if h == 0 {
				return fmt.Errorf("replica %d's ledger is empty", *id)
			}
		}
		b, err := rd.block(ctx, h)
		if err != nil {
			return err
		}
		if *asJSON {
			return httpapi.Encode(stdout, b)
		}
		printBlock(stdout, &b)
		return nil
	}
	bs, err := rd.blocks(ctx, *from, *to)
	if err != nil {
		return err
	}
	if *asJSON {
		return httpapi.Encode(stdout, bs)
	}
	for i := range bs.Blocks {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printBlock(stdout, &bs.Blocks[i])
	}
	if bs.To < *to {
		fmt.Fprintf(stderr, "the ledger ends at height %d\n", bs.Height)
	}
	return nil
}

// blockReader is where ledger show reads blocks: the running replica's API
// or its data directory. Both give the API's documents.
type blockReader interface {
	height(ctx context.Context) (uint64, error)
	block(ctx context.Context, h uint64) (httpapi.Block, error)
	// blocks is the whole range from to to (cut at the ledger's height).
	blocks(ctx context.Context, from, to uint64) (httpapi.Blocks, error)
}

// openBlockReader prefers the running replica: its store is locked while
// it runs. One that does not answer (down, or no http_addr) is read
// offline from its data directory. stderr says which.
func openBlockReader(ctx context.Context, cfg *config.Config, id int, offline bool, stderr io.Writer) (blockReader, func(), error) {
	addr := cfg.Replicas[id].HTTPAddr
	if !offline && addr != "" {
		c := httpapi.NewClient(addr, &http.Client{})
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Status(sctx)
		cancel()
		var ae *httpapi.APIError
		switch {
		case err == nil || errors.As(err, &ae):
			// It answers (even if its loop is busy: blocks come from its store).
			fmt.Fprintf(stderr, "reading replica %d's ledger over HTTP (%s)\n", id, addr)
			return httpReader{c}, func() {}, nil
		default:
			fmt.Fprintf(stderr, "replica %d does not answer at %s (%v); reading its data directory offline\n", id, addr, err)
		}
	}
	st, path, err := openReplicaStore(cfg, "", id)
	if err != nil {
		return nil, nil, err
	}
	if offline || addr == "" {
		fmt.Fprintf(stderr, "reading replica %d's ledger offline (%s)\n", id, path)
	}
	return storeReader{st}, func() { st.Close() }, nil
}

type httpReader struct{ c *httpapi.Client }

func (r httpReader) height(ctx context.Context) (uint64, error) {
	st, err := r.c.Status(ctx)
	return st.Height, err
}

func (r httpReader) block(ctx context.Context, h uint64) (httpapi.Block, error) {
	return r.c.Block(ctx, h)
}

func (r httpReader) blocks(ctx context.Context, from, to uint64) (httpapi.Blocks, error) {
	var out httpapi.Blocks
	for next := from; next <= to; {
		bs, err := r.c.Blocks(ctx, next, min(to, next+httpapi.MaxRange-1))
		if err != nil {
			return httpapi.Blocks{}, err
		}
		if next == from {
			out = bs
		} else {
			out.To, out.Blocks = bs.To, append(out.Blocks, bs.Blocks...)
		}
		if bs.To >= bs.Height || len(bs.Blocks) == 0 {
			break
		}
		next = bs.To + 1
	}
	return out, nil
}

type storeReader struct{ src ledger.Source }

func (r storeReader) height(context.Context) (uint64, error) { return r.src.Height() }

func (r storeReader) block(_ context.Context, h uint64) (httpapi.Block, error) {
	height, err := r.src.Height()
	if err != nil {
		return httpapi.Block{}, err
	}
	if h == 0 || h > height {
		return httpapi.Block{}, fmt.Errorf("no block at height %d: the ledger holds heights 1 to %d", h, height)
	}
	return httpapi.ReadBlock(r.src, h)
}

func (r storeReader) blocks(_ context.Context, from, to uint64) (httpapi.Blocks, error) {
	height, err := r.src.Height()
	if err != nil {
		return httpapi.Blocks{}, err
	}
	if from > height {
		return httpapi.Blocks{}, fmt.Errorf("no block at height %d: the ledger holds heights 1 to %d", from, height)
	}
	return httpapi.ReadRange(r.src, from, min(to, height), height, math.MaxInt)
}

// httpAddr is replica id's http_addr, or an error saying it has none.
func httpAddr(cfg *config.Config, id int) (string, error) {
	if id >= cfg.N {
		return "", fmt.Errorf("--id %d: the cluster has replicas 0 to %d", id, cfg.N-1)
	}
	addr := cfg.Replicas[id].HTTPAddr
	if addr == "" {
		return "", fmt.Errorf("replica %d has no http_addr in the configuration", id)
	}
	return addr, nil
}

// printBlock is the human form of a block document.
func printBlock(w io.Writer, b *httpapi.Block) {
	fmt.Fprintf(w, "block %d (round %d)\n", b.Height, b.Round)
	fmt.Fprintf(w, "  hash     %s\n  prev     %s\n  state    %s\n  results  %s\n", b.Hash, b.Prev, b.StateDigest, b.ResultsDigest)
	fmt.Fprintf(w, "  requests %d\n", len(b.Requests))
	for _, r := range b.Requests {
		outcome := ""
		if r.Outcome != "executed" {
			outcome = " (" + r.Outcome + ")"
		}
		fmt.Fprintf(w, "    client %d  number %d  instance %d  %s, %d bytes%s\n", r.Client, r.Number, r.Instance, r.Summary, len(r.Op), outcome)
	}
	if c := b.Certificate; c != nil {
		signers := make([]string, len(c.Signatures))
		for i, s := range c.Signatures {
			signers[i] = fmt.Sprint(s.From)
		}
		fmt.Fprintf(w, "  certificate: round %d, signed by %d replicas: %s\n", c.Round, len(signers), strings.Join(signers, " "))
	} else {
		fmt.Fprintln(w, "  certificate: none (certificates come with every checkpoint interval's last block)")
	}
}
