package harness

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// handedOut remembers the ports this process gave out, so two processes
// started by one test never get the same one even though each port is
// released before the child binds it.
var handedOut = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreeAddr returns a 127.0.0.1:port that was free a moment ago and that
// this process has not handed out before. The child binds it later, so
// another program may take it in between; starters retry on "address
// already in use".
func FreeAddr() (string, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("harness: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedOut.mu.Lock()
		fresh := !handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.mu.Unlock()
		if fresh {
			return fmt.Sprintf("127.0.0.1:%d", port), nil
		}
	}
	return "", fmt.Errorf("harness: no fresh free port")
}

// addrInUse reports whether a child's output says its port was taken.
func addrInUse(p *Process) bool {
	s := p.Stderr.String() + p.Stdout.String()
	return strings.Contains(s, "address already in use")
}

// waitListening waits until addr accepts TCP connections, the process
// exits, or ctx ends.
func waitListening(ctx context.Context, p *Process, addr string) error {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			// Ready only when the listener is our child's: another
			// program may have bound the port first, and then the
			// child is about to exit ("address already in use").
			if owned, known := ownsListener(p.Pid(), port); owned || !known {
				return nil
			}
		}
		select {
		case <-p.Done():
			return fmt.Errorf("harness: %s exited before listening on %s: %v\n%s", p.Name, addr, p.ExitErr(), p.Stderr.tail(2000))
		case <-ctx.Done():
			return fmt.Errorf("harness: %s not listening on %s: %w\n%s", p.Name, addr, ctx.Err(), p.Stderr.tail(2000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
