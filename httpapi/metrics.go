package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the histograms the runtime records as things happen (a
// latency cannot be read back from a counter at scrape time). Everything
// else is read from the snapshot when Prometheus scrapes. The histograms
// are safe for concurrent use.
type Metrics struct {
	// FsyncSeconds is how long each group commit's Sync took.
	FsyncSeconds prometheus.Histogram
	// GroupCommitBatches is how many staged batches one Sync made durable.
	GroupCommitBatches prometheus.Histogram
	// VerifyBatchSize is how many signatures one batch verification checked.
	VerifyBatchSize prometheus.Histogram
	// ClientLatencySeconds is from a client request's arrival to the
	// replica's reply to it.
	ClientLatencySeconds prometheus.Histogram

	process, goRuntime prometheus.Collector
}

// NewMetrics creates the histograms, empty.
func NewMetrics() *Metrics {
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	return &Metrics{
		FsyncSeconds: h("braid_fsync_seconds", "Duration of each group commit's sync of the store.",
			prometheus.ExponentialBuckets(0.0001, 2, 16)),
		GroupCommitBatches: h("braid_group_commit_batches", "Staged write batches made durable by one group commit.",
			prometheus.ExponentialBuckets(1, 2, 12)),
		VerifyBatchSize: h("braid_verify_batch_size", "Signatures checked by one batch verification.",
			prometheus.ExponentialBuckets(1, 2, 12)),
		ClientLatencySeconds: h("braid_client_latency_seconds", "From a client request's arrival at this replica to its reply.",
			prometheus.ExponentialBuckets(0.0005, 2, 16)),
		process:   collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		goRuntime: collectors.NewGoCollector(),
	}
}

// serveMetrics takes one snapshot (shared with concurrent and recent
// requests, see snapCache) and exposes it with the histograms, in a
// registry of this request's own; a loop that does not answer gives 503,
// not a partial page.
func (a *api) serveMetrics(w http.ResponseWriter, r *http.Request) {
	snap := a.snapshot(w, r)
	if snap == nil {
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(snapshotCollector{snap})
	if m := a.metrics; m != nil {
		reg.MustRegister(m.FsyncSeconds, m.GroupCommitBatches, m.VerifyBatchSize, m.ClientLatencySeconds, m.process, m.goRuntime)
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{a}, ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

type slogPrinter struct{ a *api }

func (p slogPrinter) Println(v ...any) { p.a.log.Warn("metrics", "err", v) }

// A metric read from the snapshot.
type metric struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
}

func gauge(name, help string, labels ...string) metric {
	return metric{prometheus.NewDesc(name, help, labels, nil), prometheus.GaugeValue}
}

func counter(name, help string, labels ...string) metric {
	return metric{prometheus.NewDesc(name, help, labels, nil), prometheus.CounterValue}
}

// The snapshot's metrics; docs/http.md lists them.
var (
	mInfo             = gauge("braid_replica_info", "Always 1; the labels name the replica and its cluster.", "id", "n", "m", "policy")
	mHeight           = gauge("braid_ledger_height", "Height of the ledger: the last executed round's block.")
	mStable           = gauge("braid_stable_checkpoint", "Last round certified by a quorum (stable checkpoint).")
	mCheckpointLag    = gauge("braid_checkpoint_lag_rounds", "Executed rounds not yet covered by a stable checkpoint.")
	mRounds           = counter("braid_rounds_executed_total", "Rounds executed.")
	mStaged           = counter("braid_batches_staged_total", "Write batches staged on the store.")
	mDurable          = counter("braid_batches_durable_total", "Write batches a completed group commit made durable.")
	mHeld             = gauge("braid_outputs_held", "Messages and replies waiting for their writes to be durable.")
	mTransfer         = gauge("braid_state_transfer", "1 while a state transfer is under way.")
	mFailStop         = gauge("braid_fail_stop", "1 once the replica stopped itself on a storage failure.")
	mFailedReplicas   = gauge("braid_failed_replicas", "Replicas the failure rule (Figure 4) holds failed.")
	mSoftFailures     = counter("braid_soft_failures_total", "Instances suspected for lagging sigma rounds behind (Definition 4.3).")
	mStalled          = counter("braid_stalled_suspicions_total", "Instances suspected for lagging without progress.")
	mFailures         = counter("braid_failure_decisions_total", "Failure decisions executed, all instances.")
	mInstRound        = gauge("braid_instance_round", "Last round the instance decided, in order.", "instance")
	mInstView         = gauge("braid_instance_view", "The instance's current view.", "instance")
	mInstPrimary      = gauge("braid_instance_primary", "The instance's agreed primary (a replica id; -1 for none).", "instance")
	mInstLow          = gauge("braid_instance_low_watermark", "The instance's stable checkpoint.", "instance")
	mInstDecided      = counter("braid_instance_decided_total", "Rounds the instance decided.", "instance")
	mInstDecidedReqs  = counter("braid_instance_decided_requests_total", "Requests in the rounds the instance decided.", "instance")
	mInstExecuted     = counter("braid_instance_executed_requests_total", "Requests the instance ordered that this replica executed.", "instance")
	mInstSuspected    = gauge("braid_instance_view_changing", "1 while this replica suspects the instance's primary and changes view.", "instance")
	mInstPrimaryFail  = gauge("braid_instance_primary_failed", "1 if the failure rule holds the instance's primary failed.", "instance")
	mInstSkipping     = gauge("braid_instance_skipping", "1 while the instance sits out rounds after a failure.", "instance")
	mInstResume       = gauge("braid_instance_resume_round", "First round the instance contributes to again after its last failure (0: never failed).", "instance")
	mInstFailures     = counter("braid_instance_failures_total", "Failure decisions the instance executed.", "instance")
	mInstViewChanges  = counter("braid_instance_view_changes_total", "View changes the instance started.", "instance")
	mDropped          = counter("braid_messages_dropped_total", "Messages dropped, by reason (instance reasons summed over instances).", "reason")
	mEgressFrames     = gauge("braid_egress_queue_frames", "Frames queued to a peer.", "peer")
	mEgressBytes      = gauge("braid_egress_queue_bytes", "Bytes held for a peer (queued or being written).", "peer")
	mIngressFrames    = gauge("braid_ingress_queue_frames", "Frames from a peer waiting for the replica's loop.", "peer")
	mClientIngress    = gauge("braid_client_ingress_queue_frames", "Client frames waiting for the replica's loop.")
	mVerifyQueue      = gauge("braid_verify_queue", "Messages on the loop waiting for a batch verification.", "kind")
	mPoolWorkers      = gauge("braid_verify_pool_workers", "Workers in the pool that verifies signatures.")
	mPoolBusy         = gauge("braid_verify_pool_busy", "Workers running a job now.")
	mPoolBusySeconds  = counter("braid_verify_pool_busy_seconds_total", "Time workers spent in jobs; its rate over the worker count is the pool's utilisation.")
	mPoolQueued       = gauge("braid_verify_pool_queue_depth", "Jobs waiting for a worker.")
	mPoolInline       = counter("braid_verify_pool_inline_total", "Jobs the loop ran itself because the pool's queue was full.")
	mCommits          = counter("braid_store_commits_total", "Store commits.")
	mFsyncs           = counter("braid_store_fsyncs_total", "Store fdatasyncs.")
	mClients          = gauge("braid_clients_connected", "Client connections open.")
	mClientAnswered   = counter("braid_client_requests_answered_from_cache_total", "Client requests answered from the reply cache.")
	mPeerFramesSent   = counter("braid_peer_frames_sent_total", "Frames written to peers.")
	mPeerFramesRecv   = counter("braid_peer_frames_received_total", "Frames received from peers.")
	mPeerBytesSent    = counter("braid_peer_bytes_sent_total", "Payload bytes written to peers.")
	mPeerBytesRecv    = counter("braid_peer_bytes_received_total", "Payload bytes received from peers.")
	mPeerReconnects   = counter("braid_peer_reconnects_total", "Peer connections re-established after a drop.")
	mClientFramesRecv = counter("braid_client_frames_received_total", "Frames received from clients.")
	mClientFramesSent = counter("braid_client_frames_sent_total", "Frames sent to clients.")
)

// snapshotCollector exposes one snapshot. It is unchecked (Describe sends
// nothing): the label values — instances, peers, drop reasons — are known
// only from the snapshot.
type snapshotCollector struct{ s *Snapshot }

func (snapshotCollector) Describe(chan<- *prometheus.Desc) {}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s, sh := c.s, &c.s.Shell
	put := func(m metric, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	put(mInfo, 1, strconv.Itoa(int(sh.ID)), strconv.Itoa(sh.N), strconv.Itoa(sh.M), sh.Policy)
	put(mHeight, float64(sh.Round))
	put(mStable, float64(sh.StableCheckpoint))
	put(mCheckpointLag, float64(sh.Round-min(sh.Round, sh.StableCheckpoint)))
	put(mRounds, float64(sh.Paradigm.RoundsExecuted))
	put(mStaged, float64(sh.Applied))
	put(mDurable, float64(sh.Durable))
	put(mHeld, float64(sh.Held))
	put(mTransfer, b(sh.Transferring))
	put(mFailStop, b(sh.Failed != ""))
	put(mFailedReplicas, float64(len(sh.FailedReplicas)))
	put(mSoftFailures, float64(sh.Paradigm.SoftFailures))
	put(mStalled, float64(sh.Paradigm.StalledSuspicions))
	put(mFailures, float64(sh.Paradigm.Failures))
	for _, in := range sh.Instances {
		i := strconv.Itoa(in.Instance)
		put(mInstRound, float64(in.LastDecided), i)
		put(mInstView, float64(in.View), i)
		put(mInstPrimary, float64(replicaNumber(in.Primary)), i)
		put(mInstLow, float64(in.LowWatermark), i)
		put(mInstDecided, float64(in.Counters.Decided), i)
		put(mInstDecidedReqs, float64(in.Counters.DecidedRequests), i)
		put(mInstExecuted, float64(in.Executed), i)
		put(mInstSuspected, b(in.Changing), i)
		put(mInstPrimaryFail, b(in.PrimaryFailed), i)
		put(mInstSkipping, b(in.Skipping), i)
		put(mInstResume, float64(in.ResumeAt), i)
		put(mInstFailures, float64(in.Failures), i)
		put(mInstViewChanges, float64(in.Counters.ViewChanges), i)
	}
	for reason, n := range dropped(s) {
		put(mDropped, float64(n), reason)
	}
	for _, q := range s.Egress {
		p := strconv.Itoa(q.Peer)
		put(mEgressFrames, float64(q.Frames), p)
		put(mEgressBytes, float64(q.Bytes), p)
		if q.Peer < len(s.Ingress) {
			put(mIngressFrames, float64(s.Ingress[q.Peer]), p)
		}
	}
	put(mClientIngress, float64(s.ClientIngress))
	put(mVerifyQueue, float64(sh.PeerVerifyQueue), "peer")
	put(mVerifyQueue, float64(sh.ClientVerifyQueue), "client")
	put(mPoolWorkers, float64(s.Pool.Workers))
	put(mPoolBusy, float64(s.Pool.Busy))
	put(mPoolBusySeconds, s.Pool.BusySeconds)
	put(mPoolQueued, float64(s.Pool.Queued))
	put(mPoolInline, float64(s.Pool.Inline))
	put(mCommits, float64(s.Store.Commits))
	put(mFsyncs, float64(s.Store.Fsyncs))
	put(mClients, float64(s.Clients.ClientsConnected))
	put(mClientAnswered, float64(sh.Ingress.ClientAnswered))
	put(mPeerFramesSent, float64(s.Peers.FramesSent))
	put(mPeerFramesRecv, float64(s.Peers.FramesReceived))
	put(mPeerBytesSent, float64(s.Peers.BytesSent))
	put(mPeerBytesRecv, float64(s.Peers.BytesReceived))
	put(mPeerReconnects, float64(s.Peers.Reconnects))
	put(mClientFramesRecv, float64(s.Clients.ClientFramesReceived))
	put(mClientFramesSent, float64(s.Clients.ClientFramesSent))
}

// dropped gathers every layer's drop counters under one reason label:
// transport_* (outbound, peers and clients), client_shed,
// invalid_signature and fetch_over_budget (the shell's ingress and its
// answers to state transfers), and instance_* for the instances' own
// reasons (instance_stale-checkpoint, instance_duplicate, ...) summed over
// instances.
func dropped(s *Snapshot) map[string]uint64 {
	sh := &s.Shell
	out := map[string]uint64{
		"transport_queue_full": s.Peers.DroppedQueueFull + s.Clients.DroppedQueueFull,
		"transport_too_large":  s.Peers.DroppedTooLarge + s.Clients.DroppedTooLarge,
		"transport_unflushed":  s.Peers.DroppedUnflushed + s.Clients.DroppedUnflushed,
		"client_shed":          sh.Ingress.ClientShed,
		"invalid_signature":    sh.InvalidSignatures,
		"fetch_over_budget":    sh.Ingress.FetchOverBudget,
	}
	for _, in := range sh.Instances {
		for reason, n := range in.Counters.Dropped {
			out["instance_"+reason] += n
		}
	}
	return out
}

// readHistogram reads h's buckets now, for the status document. A
// histogram that cannot be read (never, for the client library's own)
// gives nil: the field is left out.
func readHistogram(h prometheus.Histogram) *Histogram {
	var m dto.Metric
	if err := h.Write(&m); err != nil || m.Histogram == nil {
		return nil
	}
	out := &Histogram{Count: m.Histogram.GetSampleCount(), Sum: m.Histogram.GetSampleSum(), Buckets: []Bucket{}}
	for _, b := range m.Histogram.GetBucket() {
		out.Buckets = append(out.Buckets, Bucket{LE: b.GetUpperBound(), Count: b.GetCumulativeCount()})
	}
	return out
}
