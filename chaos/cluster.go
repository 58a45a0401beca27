package chaos

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/braid-bft/braid/auth"
	"github.com/braid-bft/braid/config"
	"github.com/braid-bft/braid/internal/loopback"
)

// proc is one replica process. In a twinned cluster two processes run the
// same replica id with the same key, each serving one half.
type proc struct {
	idx  int    // index in cluster.procs
	id   int    // replica id
	half int    // the half of a twinned cluster it belongs to; 0 otherwise
	byz  string // its --byzantine behaviour, "" for none
	twin bool

	peerAddr, clientAddr, httpAddr string
	cfgPath, dataDir, logPath      string

	mu      sync.Mutex
	cmd     *exec.Cmd
	paused  bool
	killing bool          // we are stopping it: its exit is expected
	done    chan struct{} // closed when the running process has exited
	exitErr error         // how it ended, when it ended without us
}

// correct reports whether the process is a correct replica: its ledger
// must verify and agree with the other correct ones.
func (p *proc) correct() bool { return p.byz == "" && !p.twin }

func (p *proc) name() string {
	switch {
	case p.twin:
		return fmt.Sprintf("replica %d (twin %c)", p.id, 'A'+p.half)
	case p.byz != "":
		return fmt.Sprintf("replica %d (byzantine %s)", p.id, p.byz)
	}
	return fmt.Sprintf("replica %d", p.id)
}

// cluster is the set of replica processes, their configurations and the
// network of proxies between them.
type cluster struct {
	bin    string
	dir    string
	n, f   int
	twins  bool // some ids run as two twin processes
	split  bool // the negative control: the halves do not see each other's correct replicas
	procs  []*proc
	nw     *network
	base   *config.Config
	keys   []auth.PrivateKey // client keys, by client id
	client []string          // client config file of each half

	mu         sync.Mutex
	unexpected []exit // processes that exited without being killed
}

// newCluster places the processes: byzantine lists the ids that run a
// --byzantine behaviour (with its kind); twinned lists the ids that run as
// two twins. With twins the correct replicas are split in two halves (as
// are the clients); each correct replica and client sees its own half's
// twin of every twinned id, and a twin sees only its half's correct
// replicas (two twins on one peer link would only displace each other's
// connection). With split, the negative control, a correct replica does
// not see the other half's correct replicas either: each half decides on
// its own. Without it (one twin, within f) every correct replica sees every
// other, and the twins are one equivocating replica.
func newCluster(bin, dir string, n, clients int, byzantine map[int]string, twinned []int, split bool) (*cluster, error) {
	c := &cluster{bin: bin, dir: dir, n: n, f: (n - 1) / 3, twins: len(twinned) > 0, split: split, nw: newNetwork()}
	isTwin := map[int]bool{}
	for _, id := range twinned {
		isTwin[id] = true
	}
	half := 0
	for id := 0; id < n; id++ {
		switch {
		case isTwin[id]:
			c.procs = append(c.procs, &proc{id: id, half: 0, twin: true}, &proc{id: id, half: 1, twin: true})
		default:
			p := &proc{id: id, byz: byzantine[id]}
			if c.twins {
				p.half = half
				half = 1 - half
			}
			c.procs = append(c.procs, p)
		}
	}
	basePort, err := loopback.FreeBase(3 * len(c.procs))
	if err != nil {
		return nil, err
	}
	for i, p := range c.procs {
		p.idx = i
		p.peerAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+3*i))
		p.clientAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+3*i+1))
		p.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+3*i+2))
		tag := strconv.Itoa(p.id)
		if p.twin {
			tag += string(rune('a' + p.half))
		}
		p.cfgPath = filepath.Join(dir, "configs", "replica-"+tag+".json")
		p.dataDir = filepath.Join(dir, "data", "replica-"+tag)
		p.logPath = filepath.Join(dir, "logs", "replica-"+tag+".log")
	}
	for _, d := range []string{"configs", "data", "logs", "keys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := c.writeConfigs(clients); err != nil {
		c.nw.close()
		return nil, err
	}
	return c, nil
}

// view is the process that p (a process, or with p nil the clients of
// half h) reaches for replica id r; nil when r is not visible from there.
func (c *cluster) view(p *proc, h, r int) *proc {
	if p != nil {
		h = p.half
	}
	for _, q := range c.procs {
		if q.id != r {
			continue
		}
		switch {
		case !c.twins:
			return q
		case q.twin:
			if q.half == h {
				return q
			}
		case q.half == h || (p == nil && !c.split) || (p != nil && !p.twin && !c.split):
			return q
		}
	}
	return nil
}

// writeConfigs generates the keys, one configuration per process (its
// peers at proxy ports) and one per half for the clients.
func (c *cluster) writeConfigs(clients int) error {
	cfg := config.Default(c.n, 0)
	cfg.KVScope = config.KVShared
	for id := 0; id < c.n; id++ {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			return err
		}
		path := filepath.Join(c.dir, "keys", fmt.Sprintf("replica-%d.key", id))
		if err := auth.WritePrivateKeyFile(path, priv); err != nil {
			return err
		}
		cfg.Replicas[id].PublicKey = auth.MarshalPublicKey(pub)
		cfg.Replicas[id].KeyFile = path
	}
	for j := 0; j < clients; j++ {
		pub, priv, err := auth.GenerateKey(nil)
		if err != nil {
			return err
		}
		cfg.Clients.Keys = append(cfg.Clients.Keys, config.ClientKey{ID: uint64(j), PublicKey: auth.MarshalPublicKey(pub)})
		c.keys = append(c.keys, priv)
	}
	c.base = cfg
	halves := 1
	if c.twins {
		halves = 2
	}
	for _, p := range c.procs {
		pc := clone(cfg)
		pc.DataDir = p.dataDir
		for r := range pc.Replicas {
			e := &pc.Replicas[r]
			e.HTTPAddr = ""
			if r == p.id {
				e.Addr, e.ClientAddr, e.HTTPAddr = p.peerAddr, p.clientAddr, p.httpAddr
				continue
			}
			q := c.view(p, 0, r)
			target, to := "", -1
			if q != nil {
				target, to = q.peerAddr, q.idx
			}
			l, err := c.nw.addLink(p.idx, to, target)
			if err != nil {
				return err
			}
			e.Addr = l.addr()
			if q != nil {
				e.ClientAddr = q.clientAddr
			} else if e.ClientAddr, err = c.blackHole(p.idx); err != nil {
				return err
			}
		}
		if err := pc.Save(p.cfgPath); err != nil {
			return err
		}
	}
	for h := 0; h < halves; h++ {
		cc := clone(cfg)
		for r := range cc.Replicas {
			e := &cc.Replicas[r]
			e.HTTPAddr = ""
			var err error
			if q := c.view(nil, h, r); q != nil {
				// Clients too reach replicas through proxies, so that a
				// partitioned replica is cut off from them as well.
				l, err := c.nw.addLink(c.clientNode(h), q.idx, q.clientAddr)
				if err != nil {
					return err
				}
				e.Addr, e.ClientAddr = q.peerAddr, l.addr()
			} else if e.Addr, err = c.blackHole(-1); err != nil {
				return err
			} else if e.ClientAddr, err = c.blackHole(-1); err != nil {
				return err
			}
		}
		path := filepath.Join(c.dir, "configs", fmt.Sprintf("clients-%d.json", h))
		if err := cc.Save(path); err != nil {
			return err
		}
		c.client = append(c.client, path)
	}
	return nil
}

// clientNode is the network node of half h's clients: the proxies'
// switches know processes by index, and the clients come after them.
func (c *cluster) clientNode(h int) int { return len(c.procs) + h }

// blackHole is an address that accepts connections and closes them.
func (c *cluster) blackHole(from int) (string, error) {
	l, err := c.nw.addLink(from, -1, "")
	if err != nil {
		return "", err
	}
	return l.addr(), nil
}

func clone(c *config.Config) *config.Config {
	out := *c
	out.Replicas = append([]config.Replica(nil), c.Replicas...)
	out.Clients.Keys = append([]config.ClientKey(nil), c.Clients.Keys...)
	return &out
}

// clientHalf is the half whose configuration client j uses.
func (c *cluster) clientHalf(j int) int { return j % len(c.client) }

// start launches p's process.
func (c *cluster) start(p *proc) error {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"replica", "--config", p.cfgPath, "--id", strconv.Itoa(p.id)}
	if p.byz != "" {
		args = append(args, "--byzantine", p.byz, "--unsafe-byzantine")
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name(), err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.paused, p.killing, p.done, p.exitErr = cmd, false, false, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		expected := p.killing
		if !expected {
			if err == nil {
				err = errors.New("exit status 0")
			}
			p.exitErr = err
		}
		p.cmd = nil
		p.mu.Unlock()
		close(done)
		if !expected {
			c.mu.Lock()
			c.unexpected = append(c.unexpected, exit{p, fmt.Sprintf("%s exited on its own: %v; its log ends: %s (log %s)", p.name(), err, logTail(p.logPath), p.logPath)})
			c.mu.Unlock()
		}
	}()
	return nil
}

// running reports whether p's process is up (paused counts as up).
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// signal sends sig to p's process if it runs.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
		switch sig {
		case syscall.SIGSTOP:
			p.paused = true
		case syscall.SIGCONT:
			p.paused = false
		}
	}
}

// kill ends p's process with SIGKILL and waits for it.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd != nil {
		p.killing = true
		_ = cmd.Process.Kill()
	}
	p.mu.Unlock()
	if cmd != nil {
		<-done
	}
}

// stop ends p's process gracefully (SIGCONT, SIGTERM), killing it after
// grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd != nil {
		p.killing = true
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// shutdown stops every process and proxy.
func (c *cluster) shutdown() {
	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(5 * time.Second) }()
	}
	wg.Wait()
	c.nw.close()
}

// unexpectedExits returns, and forgets, the exits nobody asked for.
func (c *cluster) unexpectedExits() []exit {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.unexpected
	c.unexpected = nil
	return out
}

// exit is a process's end that nobody asked for.
type exit struct {
	p    *proc
	desc string
}

// logTail returns the last lines of a replica's log, joined, so that a
// report says why a process stopped even after its directory is removed.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	defer f.Close()
	const window = 4 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		if _, err := f.Seek(st.Size()-window, io.SeekStart); err != nil {
			return fmt.Sprintf("(unreadable: %v)", err)
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, window))
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}
