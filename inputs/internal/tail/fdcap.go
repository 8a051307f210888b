package tail

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The open files cap (issue 12.4; see "Open files" in the package doc).
//
// Every descriptor the tail core holds on a log file is a token of one
// process-wide pool, fds, shared by every Tail of the process (the docker
// and the CRI inputs draw on the same RLIMIT_NOFILE). The pool's limit,
// the budget, is the soft RLIMIT_NOFILE minus a reserve for everything
// else the agent opens (buffer segments, sockets, offsets and journal
// files, inotify, config files): max(256, a quarter of the limit), at
// most half of it. A Tail's own cap is Config.MaxOpenFiles, bounded by the
// budget (0: the budget).
//
// When a Tail needs a descriptor (the scan opens a file to read its head)
// and is at its cap, or the pool is exhausted, it parks its least
// recently active idle file: a live file read to its end (checked with
// fstat), never a rotated or deleted one being finished. A parked file
// keeps its identity (device, inode, fingerprint, offsets, pending
// partial groups); the scan reopens it when it changed (see match). If
// nothing can be parked, the open is deferred: the source is left as it
// is (no newer file of it is opened, nothing is counted as lost) and
// scanned again once a descriptor may be free.

// fdReserveMin is the least number of descriptors left to the rest of the
// agent.
const fdReserveMin = 256

// fdUnlimited stands for an unlimited (or huge) RLIMIT_NOFILE.
const fdUnlimited = 1 << 20

// fdUnknown stands for an RLIMIT_NOFILE that cannot be read.
const fdUnknown = 1024

// errNoFD: the open was deferred, the cap is reached and nothing idle
// could be closed.
var errNoFD = errors.New("open files cap reached")

// nofileLimit returns the soft RLIMIT_NOFILE (replaced by tests).
var nofileLimit = softNOFILE

// fdBudget returns the descriptors the tail inputs of the process may
// hold on log files: the soft RLIMIT_NOFILE minus the reserve.
func fdBudget() int {
	soft, err := nofileLimit()
	if err != nil {
		soft = fdUnknown
	}
	n := int(min(soft, fdUnlimited))
	reserve := min(max(fdReserveMin, n/4), n/2)
	return max(n-reserve, 1)
}

// fds is the process-wide pool of log file descriptors.
var fds fdPool

// fdPool counts the log file descriptors held by every Tail of the
// process. Tails running (Run) are members: they get a fair share when
// the pool is exhausted and are woken when descriptors come free.
type fdPool struct {
	mu      sync.Mutex
	limit   int // the budget, read again whenever the pool is unused
	used    int
	members map[*Tail]*fdMember
	// gen counts releases: a Tail whose open was deferred tries again
	// once it moved. pressure counts refusals of a member below its fair
	// share: the others then close idle files down to theirs.
	gen      atomic.Uint64
	pressure atomic.Uint64
}

type fdMember struct {
	held     int
	starving bool          // refused since the last release: wake it at the next
	wake     chan struct{} // the Tail's fdWake
}

// refreshLocked reads the budget again while no Tail runs (tests change
// RLIMIT_NOFILE between runs).
func (p *fdPool) refreshLocked() {
	if p.limit == 0 || len(p.members) == 0 {
		p.limit = fdBudget()
	}
}

// register makes t a member and returns the budget.
func (p *fdPool) register(t *Tail) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.members) == 0 {
		p.limit = fdBudget()
	}
	if p.members == nil {
		p.members = make(map[*Tail]*fdMember)
	}
	p.members[t] = &fdMember{held: t.openFiles, wake: t.fdWake}
	return p.limit
}

func (p *fdPool) unregister(t *Tail) {
	p.mu.Lock()
	delete(p.members, t)
	p.mu.Unlock()
}

// budget returns the pool's limit.
func (p *fdPool) budget() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return p.limit
}

// share is a member's fair share of the budget.
func (p *fdPool) share() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit / max(len(p.members), 1)
}

// starving reports whether some member's open was refused since the
// last release.
func (p *fdPool) starving() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.members {
		if m.starving {
			return true
		}
	}
	return false
}

// acquire takes one token for t, if the pool has one. A member refused
// while below its fair share asks the others to shed.
func (p *fdPool) acquire(t *Tail) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	m := p.members[t]
	if p.used < p.limit {
		p.used++
		if m != nil {
			m.held++
		}
		return true
	}
	if m != nil {
		m.starving = true
		if m.held < p.limit/len(p.members) {
			p.pressure.Add(1)
			for o, om := range p.members {
				if o != t {
					signal(om.wake)
				}
			}
		}
	}
	return false
}

// release gives back n tokens of t and wakes the starving members.
func (p *fdPool) release(t *Tail, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used -= n
	if m := p.members[t]; m != nil {
		m.held -= n
	}
	p.gen.Add(1)
	for o, om := range p.members {
		if om.starving && o != t {
			om.starving = false
			signal(om.wake)
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// setCap sets t's cap from the pool's budget.
func (t *Tail) setCap(budget int) {
	t.maxOpen = budget
	if t.cfgMaxOpen > 0 {
		t.maxOpen = min(t.cfgMaxOpen, budget)
	}
	t.m.openLimit.Set(float64(t.maxOpen))
}

// openFD opens a log file the scan found, within the cap: at the cap it
// first parks an idle file. errNoFD means the open is deferred.
func (t *Tail) openFD(path string, dev, ino uint64) (*os.File, error) {
	for retried := false; ; retried = true {
		if !t.acquire() {
			return nil, errNoFD
		}
		fd, err := openRegular(path, dev, ino)
		if err == nil {
			return fd, nil
		}
		t.releaseFD()
		if !tooManyFiles(err) {
			return nil, err
		}
		// The process is out of descriptors (the rest of the agent uses
		// more than the reserve): give one back and try once more.
		if ok, n := t.warnFD.allow(time.Now()); ok {
			t.log.Warn("out of file descriptors; closing idle log files and deferring opens", "err", err,
				"open", t.openFiles, "cap", t.maxOpen, "suppressed", n)
		}
		if retried || !t.parkIdle() {
			return nil, errNoFD
		}
	}
}

// acquire takes a token for one descriptor, parking idle files while t
// is at its cap or the pool is exhausted.
func (t *Tail) acquire() bool {
	if t.maxOpen == 0 {
		t.setCap(fds.budget())
	}
	for {
		if t.openFiles < t.maxOpen && fds.acquire(t) {
			t.openFiles++
			t.peakOpen = max(t.peakOpen, t.openFiles)
			return true
		}
		if !t.parkIdle() {
			return false
		}
	}
}

// releaseFD gives back the token of a descriptor just closed.
func (t *Tail) releaseFD() {
	t.openFiles--
	fds.release(t, 1)
	t.fdGauges()
}

// closeFD closes a descriptor openFD returned.
func (t *Tail) closeFD(fd *os.File) {
	_ = fd.Close()
	t.releaseFD()
}

func (t *Tail) fdGauges() {
	t.m.open.Set(float64(t.openFiles))
	t.m.files.Set(float64(t.openFiles + t.parked))
}

// parkable reports whether f may be closed while idle: a live file open,
// not replaced, in no physical line longer than the buffer, with nothing
// known to be unread (park checks with fstat).
func parkable(f *file) bool {
	return f.f != nil && f.live && !f.gone && !f.truncated && f.long == nil && f.readOff >= f.size
}

// idleBefore orders the files to park: those with no pending partial or
// multiline group first (a parked one still expires after its timeout),
// then the least recently active.
func idleBefore(a, b *file) bool {
	pa, pb := a.holding(), b.holding()
	if pa != pb {
		return pb
	}
	if !a.lastData.Equal(b.lastData) {
		return a.lastData.Before(b.lastData)
	}
	return a.seq < b.seq
}

// parkIdle parks the least recently active idle file of t (never one of
// the source being matched). It reports whether one was parked.
func (t *Tail) parkIdle() bool {
	if t.noIdleAt == t.fdGen+1 {
		return false // nothing was parkable and nothing was read since
	}
	t.evictGen++
	for {
		var best *file
		skipped := false
		for _, s := range t.order {
			for _, f := range s.files {
				if !parkable(f) || f.evictSkip == t.evictGen {
					continue
				}
				if s == t.matching {
					skipped = true
					continue
				}
				if best == nil || idleBefore(f, best) {
					best = f
				}
			}
		}
		if best == nil {
			if !skipped {
				t.noIdleAt = t.fdGen + 1
			}
			return false
		}
		if t.park(best) {
			return true
		}
		best.evictSkip = t.evictGen
	}
}

// park closes the idle file f, keeping everything else of it. It refuses
// (false) if fstat shows data not read yet (the source is made dirty) or
// a file shorter than what was read (a scan looks at it).
func (t *Tail) park(f *file) bool {
	fi, err := f.f.Stat()
	if err != nil {
		return false
	}
	switch size := fi.Size(); {
	case size > f.readOff:
		f.src.dirty = true
		return false
	case size < f.readOff:
		f.mod = time.Time{}
		t.scanSoon(f.src.key)
		return false
	}
	if err := f.f.Close(); err != nil {
		t.log.Debug("close", "path", f.path, "err", err)
	}
	f.f = nil
	f.size, f.mod = fi.Size(), fi.ModTime()
	f.parked = true
	t.parked++
	t.releaseFD()
	t.m.closedIdle.Inc()
	t.log.Debug("idle file closed", "path", f.path, "offset", f.readOff, "open", t.openFiles)
	return true
}

// unpark counts a parked file reopened.
func (t *Tail) unpark(f *file, reopened bool) {
	if !f.parked {
		return
	}
	f.parked = false
	t.parked--
	if reopened {
		t.m.reopened.Inc()
	}
}

// shed parks idle files until t holds at most target descriptors.
func (t *Tail) shed(target int) {
	for t.openFiles > target && t.parkIdle() {
	}
}

// starve records that a file of source key could not be opened: the
// source is scanned again once a descriptor may be free.
func (t *Tail) starve(key string) {
	if t.starved == nil {
		t.starved = make(map[string]struct{})
	}
	t.starved[key] = struct{}{}
	t.starves++
	t.starvedGen, t.starvedPool = t.fdGen, fds.gen.Load()
	t.m.deferred.Inc()
	if ok, n := t.warnCap.allow(time.Now()); ok {
		t.log.Info("open files cap reached, opens deferred until a file is finished or idle",
			"cap", t.maxOpen, "open", t.openFiles, "suppressed", n)
	}
}

// fdHousekeeping runs on the reader before each round: it sheds idle
// files down to t's fair share while another member is refused, and scans
// again the sources whose opens were deferred once a descriptor may be
// free (a release in the pool, or a file of t read to its end).
func (t *Tail) fdHousekeeping(now time.Time) {
	fresh := false
	if pr := fds.pressure.Load(); pr != t.pressureSeen {
		t.pressureSeen, t.shedWanted, fresh = pr, true, true
	}
	if t.shedWanted && (fresh || t.fdGen != t.shedTried) {
		t.shedTried = t.fdGen
		share := fds.share()
		t.shed(share)
		t.shedWanted = t.openFiles > share && fds.starving()
	}
	if len(t.starved) == 0 || (t.fdGen == t.starvedGen && fds.gen.Load() == t.starvedPool) {
		return
	}
	for key := range t.starved {
		delete(t.starved, key)
		n := t.starves
		if t.realDirs(key) {
			t.scanSource(key, now)
		}
		if t.starves != n {
			break // deferred again: the others would be too
		}
	}
	t.reorder()
}
