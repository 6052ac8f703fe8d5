import java.time.Duration;
import java.util.function.LongFunction;

/**
 * A count of like events for the error log, said at warn: the first at once, then at most
 * one line per period with the count since. The last of a burst is said when its period
 * is up, by a virtual thread that waits for it, so that a flood neither floods the log nor
 * goes unsaid (connections refused over max_connections, idle ones closed to make room).
 */
final class LogTally {
    private final Log log;
    private final Duration every;
    private final LongFunction<String> line; // the line for a count
    private long unreported;    // events not yet in the log (guarded by this)
    private long nextReport;    // nanoTime before which an event is only counted (guarded by this)
    private boolean reportDue;  // a report of the count is set for nextReport (guarded by this)

    LogTally(Log log, Duration every, LongFunction<String> line) {
        this.log = log;
        this.every = every;
        this.line = line;
        this.nextReport = System.nanoTime();
    }

    /** Counts {@code n} events, and says them now or has them said with the others once the period is up. */
    synchronized void add(long n) {
        unreported += n;
        if (reportDue) return;
        long wait = nextReport - System.nanoTime();
        if (wait <= 0) {
            report();
            return;
        }
        reportDue = true;
        try {
            Thread.ofVirtual().name("log tally").start(() -> {
                try {
                    Thread.sleep(Duration.ofNanos(wait));
                } catch (InterruptedException ignored) {
                    // report at once
                }
                synchronized (this) {
                    reportDue = false;
                    report();
                }
            });
        } catch (RuntimeException | Error e) {
            reportDue = false; // no thread for it: the count goes into the next report
        }
    }

    private void report() { // guarded by this
        log.warn(line.apply(unreported));
        unreported = 0;
        nextReport = System.nanoTime() + every.toNanos();
    }
}
