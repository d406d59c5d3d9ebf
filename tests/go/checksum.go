// A Go program for tests/hijack.rs: static (CGO_ENABLED=0), several goroutines
// on several threads (GOMAXPROCS 4), the Go runtime's own signals (SIGURG for
// preemption) and timers. Each round the goroutines mix a quarter of a table each,
// then the table is folded into a running checksum: a restart that lost or
// repeated anything gives other TICK or DONE lines. Usage: checksum ROUNDS
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func mix(x uint64) uint64 {
	x ^= x >> 31
	x *= 0x7fb5d329728ea185
	x ^= x >> 27
	x *= 0x81dadef4bc2dd44d
	return x ^ (x >> 33)
}

func main() {
	runtime.GOMAXPROCS(4)
	rounds := 100
	if len(os.Args) > 1 {
		rounds, _ = strconv.Atoi(os.Args[1])
	}
	data := make([]uint64, 1<<16)
	var sum uint64
	fmt.Println("READY")
	for r := 1; r <= rounds; r++ {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := g; i < len(data); i += 4 {
					data[i] = mix(data[i] + uint64(r*i))
				}
			}(g)
		}
		wg.Wait()
		for _, v := range data {
			sum = sum*31 + v
		}
		fmt.Printf("TICK %d %016x\n", r, sum)
		time.Sleep(15 * time.Millisecond)
	}
	fmt.Printf("DONE %016x\n", sum)
}
