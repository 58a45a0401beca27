package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/httpapi"
)

const statusUsage = `Usage: braid status --config FILE [--json] [--timeout D]

Asks every replica's HTTP API (http_addr, GET /v1/status) for its state, all
at once, and prints one line per replica:
  id, up or down, executed round, rounds behind the most advanced replica,
  each instance's view and primary (instance 0 first; * marks a view change
  under way).
A replica that does not answer within --timeout is down. Exits 1 if any
replica is down.

`

// replicaState is one line of braid status (and its --json element).
type replicaState struct {
	ID     int             `json:"id"`
	Addr   string          `json:"http_addr"`
	Up     bool            `json:"up"`
	Error  string          `json:"error,omitempty"`
	Lag    uint64          `json:"lag"`
	Status *httpapi.Status `json:"status,omitempty"`
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("braid status", statusUsage, stderr)
	cfgPath := fs.String("config", "", "cluster configuration (required)")
	asJSON := fs.Bool("json", false, "print the replicas' states as JSON")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for each replica")
	if stop, err := parseFlagsOnly(fs, args, "braid status"); stop {
		return err
	}
	switch {
	case *cfgPath == "":
		return errors.New("--config is required: the cluster configuration naming each replica's http_addr")
	case *timeout <= 0:
		return fmt.Errorf("--timeout %v: must be positive", *timeout)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	states := queryAll(cfg, *timeout)
	if *asJSON {
		if err := httpapi.Encode(stdout, states); err != nil {
			return err
		}
	} else {
		printStates(stdout, states)
	}
	for _, s := range states {
		if !s.Up {
			return exitCode(1)
		}
	}
	return nil
}

// queryAll asks every replica at once, each bounded by timeout, and fills
// in each one's lag behind the highest round any replica reported.
func queryAll(cfg *config.Config, timeout time.Duration) []replicaState {
	states := make([]replicaState, len(cfg.Replicas))
	hc := &http.Client{Timeout: timeout}
	var wg sync.WaitGroup
	for i, r := range cfg.Replicas {
		states[i] = replicaState{ID: r.ID, Addr: r.HTTPAddr}
		if r.HTTPAddr == "" {
			states[i].Error = "no http_addr in the configuration"
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			st, err := httpapi.NewClient(r.HTTPAddr, hc).Status(ctx)
			if err != nil {
				states[i].Error = err.Error()
				return
			}
			states[i].Up, states[i].Status = true, &st
		})
	}
	wg.Wait()
	var top uint64
	for _, s := range states {
		if s.Up {
			top = max(top, s.Status.Round)
		}
	}
	for i := range states {
		if states[i].Up {
			states[i].Lag = top - states[i].Status.Round
		}
	}
	return states
}

func printStates(w io.Writer, states []replicaState) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tstate\tround\tlag\tviews\tprimaries")
	for _, s := range states {
		if !s.Up {
			fmt.Fprintf(tw, "%d\tdown\t-\t-\t-\t-\t%s\n", s.ID, s.Error) // the reason, unaligned
			continue
		}
		st := s.Status
		views := make([]string, len(st.Instances))
		prims := make([]string, len(st.Instances))
		for i, in := range st.Instances {
			views[i] = strconv.FormatUint(in.View, 10)
			if in.ViewChanging {
				views[i] += "*"
			}
			prims[i] = strconv.Itoa(in.Primary)
			if in.Primary < 0 {
				prims[i] = "?"
			}
		}
		line := fmt.Sprintf("%d\tup\t%d\t%d\t%s\t%s", s.ID, st.Round, s.Lag, strings.Join(views, ","), strings.Join(prims, ","))
		if st.Failed != "" {
			line += "\tstopped: " + st.Failed
		} else if st.Transferring {
			line += "\tstate transfer under way"
		}
		if st.Byzantine != "" {
			line += fmt.Sprintf("\tBYZANTINE (test only): %s, %d frames tampered with", st.Byzantine, st.ByzantineTampered)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}
