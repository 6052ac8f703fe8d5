import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Enforces every timeout of the proxy.
 *
 * <p>Why this exists: a blocking {@code SocketChannel.read} or {@code write} ignores
 * SO_TIMEOUT and would wait forever for a silent peer. So each {@link Wire} publishes the
 * moment by which its current read or write must finish (a deadline, in
 * {@link System#nanoTime} terms), and this one thread looks at all of them every
 * {@link #TICK_MILLIS} and closes the channel of any wire that is overdue. Closing a
 * channel wakes the virtual thread blocked on it with an {@code AsynchronousCloseException},
 * which the wire reports as {@link Wire.Timeout}.
 *
 * <p>Arming a deadline costs one volatile write, so it can be done around every read and
 * write; a timeout fires at most one tick late.
 */
final class Watchdog {
    static final long TICK_MILLIS = 50;

    /** What the watchdog watches: something with deadlines ({@link Wire}). */
    interface Watched {
        /** Expires whatever operation is past its deadline at {@code now}. */
        void expireIfOverdue(long now);
    }

    private static final Set<Watched> WATCHED = ConcurrentHashMap.newKeySet();
    private static volatile boolean reported; // an unexpected failure has been said once
    private static volatile Log log; // where it is said (the proxy's error log); null: standard error

    static {
        Thread.ofPlatform().daemon().name("watchdog").start(Watchdog::run);
    }

    private Watchdog() {}

    /** The error log that an unexpected failure of the watchdog goes to (one proxy per process). */
    static synchronized void reportTo(Log errors) {
        log = errors;
    }

    /** That log is closing: from now on, standard error (unless another proxy has started since). */
    static synchronized void stopReportingTo(Log errors) {
        if (log == errors) log = null;
    }

    static void watch(Watched w) {
        WATCHED.add(w);
    }

    static void forget(Watched w) {
        WATCHED.remove(w);
    }

    /** How many are watched now (for tests: a closed connection must not stay here). */
    static int size() {
        return WATCHED.size();
    }

    private static void run() {
        while (true) {
            try {
                Thread.sleep(TICK_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
            // Whatever fails, it must not end this loop: every timeout of the proxy, the
            // slowloris defence among them, depends on it. One failing wire must not keep the
            // others from their deadlines either.
            try {
                long now = System.nanoTime();
                for (Watched w : WATCHED) {
                    try {
                        w.expireIfOverdue(now);
                    } catch (RuntimeException | Error e) {
                        report(e);
                    }
                }
            } catch (RuntimeException | Error e) {
                report(e);
            }
        }
    }

    /** Says it once, with its stack: an unexpected failure is a bug to see, not to repeat. */
    private static void report(Throwable e) {
        if (reported) return;
        reported = true;
        Log to = log;
        if (to != null) {
            to.unexpected("watching deadlines (going on)", e); // never throws
            return;
        }
        try {
            System.err.println("watchdog: unexpected failure, going on");
            e.printStackTrace();
        } catch (RuntimeException | Error unsaid) {
            // out of memory for the report itself: going on matters more than saying it
        }
    }
}
