package sim

import (
	"fmt"
	"maps"
	"slices"

	"github.com/braid-bft/braid/app"
	"github.com/braid-bft/braid/app/bank"
	"github.com/braid-bft/braid/ledger"
	"github.com/braid-bft/braid/msg"
)

// The bank workload (Options.Bank): every closed-loop client opens an
// account, deposits into it, then transfers to the others' accounts
// (conditional transfers, "if balance > n then move m") and reads balances,
// its last operation reading its own. The checker keeps the agreed ledger
// (each height's requests and results, from the first correct replica to
// execute it) and at the end replays it: every bank request appears in it
// at most once, and every result the replicas computed — each transfer's
// executed-or-skipped, each rejection, each balance read — is what a bank
// that conserves money gives in that order; the money in all accounts is
// what the deposits minted, and no balance goes negative.

// bankStartBalance is each client's one deposit.
const bankStartBalance = 100

// bankOp is a bank operation the workload sent.
type bankOp struct {
	kind     byte // 'o'pen, 'd'eposit, 'b'alance, 't'ransfer
	acct, to string
	n, m     uint64
}

func (o bankOp) String() string {
	switch o.kind {
	case 'o':
		return fmt.Sprintf("open(%s)", o.acct)
	case 'd':
		return fmt.Sprintf("deposit(%s, %d)", o.acct, o.m)
	case 'b':
		return fmt.Sprintf("balance(%s)", o.acct)
	}
	return fmt.Sprintf("transfer(%s → %s, if > %d move %d)", o.acct, o.to, o.n, o.m)
}

func (o bankOp) encode() []byte {
	switch o.kind {
	case 'o':
		return bank.Open(o.acct)
	case 'd':
		return bank.Deposit(o.acct, o.m)
	case 'b':
		return bank.Balance(o.acct)
	}
	return bank.Transfer(o.acct, o.to, o.n, o.m)
}

func bankAccount(c msg.ClientID) string { return fmt.Sprintf("acct/%d", c) }

// nextBankOp is client c's next bank operation, a fixed function of the
// client and its operation count.
func (c *client) nextBankOp() bankOp {
	own := bankAccount(c.id)
	switch {
	case c.ops == 0:
		return bankOp{kind: 'o', acct: own}
	case c.ops == 1:
		return bankOp{kind: 'd', acct: own, m: bankStartBalance}
	case c.ops == c.total-1:
		return bankOp{kind: 'b', acct: own}
	}
	clients := uint64(max(c.w.opts.Clients, 1))
	h := mix64(uint64(c.id)<<32 | uint64(c.ops) | 1<<63)
	if h%100 < 25 {
		return bankOp{kind: 'b', acct: bankAccount(msg.ClientID((h >> 8) % clients))}
	}
	to := c.id
	if clients > 1 {
		to = msg.ClientID((uint64(c.id) + 1 + (h>>16)%(clients-1)) % clients)
	}
	return bankOp{kind: 't', acct: own, to: bankAccount(to), n: (h >> 24) % 20, m: 1 + (h>>32)%30}
}

// BankStats is what the bank check covered.
type BankStats struct {
	Operations int `json:"operations"` // bank requests in the agreed ledger
	Transfers  int `json:"transfers"`  // of which transfers that moved money
	// Incomplete counts runs whose ledger had a height no correct replica
	// executed itself (all got it by state transfer): not replayed.
	Incomplete int    `json:"incomplete"`
	Money      uint64 `json:"money"` // in all accounts at the end
}

func (s *BankStats) add(o BankStats) {
	s.Operations += o.Operations
	s.Transfers += o.Transfers
	s.Incomplete += o.Incomplete
	s.Money += o.Money
}

// ledgerEntry is one executed request of the agreed ledger.
type ledgerEntry struct {
	key    msg.RequestKey
	result []byte
}

// bankSent records a bank operation as the client sends it.
func (c *checker) bankSent(key msg.RequestKey, o bankOp) {
	if c.bankOps == nil {
		c.bankOps = map[msg.RequestKey]bankOp{}
	}
	c.bankOps[key] = o
}

// block keeps a correct replica's executed block, once per height.
func (c *checker) block(r *replica, b *ledger.Block, results [][]byte) {
	if !c.isCorrect(r) {
		return
	}
	if c.ledger == nil {
		c.ledger = map[uint64][]ledgerEntry{}
	}
	if _, ok := c.ledger[b.Height]; ok {
		return
	}
	es := []ledgerEntry{} // every height is kept, empty or not, so a gap shows
	for i := range b.Requests {
		if key := b.Requests[i].Key(); c.bankOps[key] != (bankOp{}) {
			es = append(es, ledgerEntry{key: key, result: slices.Clone(results[i])})
		}
	}
	c.ledger[b.Height] = es
}

// checkBank replays the agreed ledger's bank requests.
func (c *checker) checkBank() *BankStats {
	st := &BankStats{}
	heights := slices.Sorted(maps.Keys(c.ledger))
	for i, h := range heights {
		if h != uint64(i+1) {
			st.Incomplete++
			return st
		}
	}
	var entries []ledgerEntry
	for _, h := range heights {
		entries = append(entries, c.ledger[h]...)
	}
	errs := replayBank(entries, c.bankOps, st)
	for _, e := range errs {
		c.report("bank: %s", e)
	}
	return st
}

// maxBankReports bounds the bank check's findings in a run's report.
const maxBankReports = 5

// replayBank checks entries, in ledger order, against a money-conserving
// bank; ops names the bank requests (others are skipped).
func replayBank(entries []ledgerEntry, ops map[msg.RequestKey]bankOp, st *BankStats) []string {
	var errs []string
	bad := func(format string, args ...any) {
		if len(errs) < maxBankReports {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	bal := map[string]uint64{}
	var minted uint64
	seen := map[msg.RequestKey]bool{}
	for _, e := range entries {
		o, ok := ops[e.key]
		if !ok {
			continue
		}
		st.Operations++
		if seen[e.key] {
			bad("%s (client %d, request %d) is in the ledger twice", o, e.key.Client, e.key.Number)
			continue
		}
		seen[e.key] = true
		status, _, err := app.DecodeResult(e.result)
		if err != nil {
			bad("%s: undecodable result", o)
			continue
		}
		from, fromOK := bal[o.acct]
		_, toOK := bal[o.to]
		want := func(cond bool) {
			if !cond {
				holds := "is absent"
				if fromOK {
					holds = fmt.Sprintf("holds %d", from)
				}
				bad("%s (client %d, request %d) returned %s, but replaying the ledger %s %s there", o, e.key.Client, e.key.Number,
					describeBankResult(o, status, e.result), o.acct, holds)
			}
		}
		switch o.kind {
		case 'o':
			want(status == app.StatusOK && !fromOK)
			if status == app.StatusOK {
				bal[o.acct] = 0
			}
		case 'd':
			want((status == app.StatusOK && fromOK) || (status == app.StatusNotFound && !fromOK))
			if status == app.StatusOK {
				bal[o.acct] += o.m
				minted += o.m
			}
		case 'b':
			if status == app.StatusOK {
				v, err := bank.DecodeBalance(e.result)
				want(err == nil && fromOK && v == from)
			} else {
				want(status == app.StatusNotFound && !fromOK)
			}
		case 't':
			switch {
			case status == app.StatusNotFound:
				want(!fromOK || !toOK)
			case status == app.StatusRejected:
				want(fromOK && toOK && from > o.n && from < o.m)
			default:
				moved, err := bank.DecodeTransfer(e.result)
				want(err == nil && fromOK && toOK && moved == (from > o.n))
				if err == nil && moved && from > o.n && from >= o.m && fromOK && toOK {
					st.Transfers++
					bal[o.acct] -= o.m
					bal[o.to] += o.m
				}
			}
		}
	}
	var total uint64
	for _, v := range bal {
		total += v
	}
	st.Money = total
	if total != minted {
		bad("conservation: the accounts hold %d, the deposits minted %d", total, minted)
	}
	return errs
}

func describeBankResult(o bankOp, status app.Status, result []byte) string {
	if status != app.StatusOK {
		return status.String()
	}
	switch o.kind {
	case 'b':
		if v, err := bank.DecodeBalance(result); err == nil {
			return fmt.Sprintf("balance %d", v)
		}
	case 't':
		if moved, err := bank.DecodeTransfer(result); err == nil {
			return map[bool]string{true: "moved", false: "skipped (condition false)"}[moved]
		}
	}
	return "ok"
}
