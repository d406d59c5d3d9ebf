// A Java program (the JVM: ~20 threads, its own signal handlers, JIT code) with a
// worker thread pool computing a checksum of a known sequence each tick; after the
// restart the pool goes on and every checksum is still right.
import java.nio.file.*;
import java.util.concurrent.*;

public class Checksum {
    static String startTime() throws Exception {
        String s = new String(Files.readAllBytes(Paths.get("/proc/self/stat")));
        return s.substring(s.lastIndexOf(')') + 2).split(" ")[19];
    }

    static long chunk(int part) {
        long h = 1469598103934665603L;
        for (int i = part * 100000; i < (part + 1) * 100000; i++) {
            h ^= i;
            h *= 1099511628211L;
        }
        return h;
    }

    public static void main(String[] args) throws Exception {
        int total = args.length > 0 ? Integer.parseInt(args[0]) : 60;
        ExecutorService pool = Executors.newFixedThreadPool(4);
        long want = 0;
        for (int p = 0; p < 16; p++) want += chunk(p);
        String started = startTime();
        long pid = ProcessHandle.current().pid();
        System.out.println("READY");
        for (int i = 1; i <= total; i++) {
            if (!startTime().equals(started)) {
                started = startTime();
                if (ProcessHandle.current().pid() != pid) {
                    System.out.println("FAIL: pid changed");
                    System.exit(1);
                }
                System.out.println("RESTARTED java at " + i);
            }
            java.util.List<Future<Long>> fs = new java.util.ArrayList<>();
            for (int p = 0; p < 16; p++) {
                final int part = p;
                fs.add(pool.submit(() -> chunk(part)));
            }
            long got = 0;
            for (Future<Long> f : fs) got += f.get();
            if (got != want) {
                System.out.println("FAIL: checksum " + got + ", want " + want);
                System.exit(1);
            }
            Thread.sleep(25);
            System.out.println("TICK " + i);
        }
        System.out.println("DONE");
        System.exit(0);
    }
}
