import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.LongAdder;

/**
 * What the status listener ({@link Status}) reads about the upstream servers: plain
 * counters owned by the server or group they count (nginx's stub_status and Prometheus
 * clients keep theirs the same way). Counting is a {@link LongAdder} increment and a few
 * volatile writes per attempt, so it runs whether anyone reads it or not; only the status
 * page adds them up.
 */
final class Counters {
    private Counters() {}

    /** One upstream server's: attempts by status, failures, the last error, a recent response time. */
    static final class Server {
        final LongAdder requests = new LongAdder();
        final LongAdder failures = new LongAdder();
        // Attempts by status (index 0: no response), each made when first seen: no boxing on the way.
        private final AtomicReferenceArray<LongAdder> codes = new AtomicReferenceArray<>(600);
        volatile String lastError;   // null: none yet
        volatile long lastErrorAt;   // System.currentTimeMillis() of it
        private volatile long recentNanos = -1; // an exponentially weighted average; -1: none yet

        /** One attempt ended: its status (0 if none came) and how long it took. */
        void attempt(int status, long nanos) {
            requests.increment();
            int i = status >= 0 && status < 600 ? status : 0;
            LongAdder n = codes.get(i);
            if (n == null && !codes.compareAndSet(i, null, n = new LongAdder())) n = codes.get(i);
            n.increment();
            long r = recentNanos; // racy on purpose: a lost update only weighs one sample less
            recentNanos = r < 0 ? nanos : r + (nanos - r) / 8;
        }

        /** The attempts by status so far, in order of status. */
        Map<Integer, Long> byStatus() {
            Map<Integer, Long> out = new TreeMap<>();
            for (int i = 0; i < codes.length(); i++) {
                LongAdder n = codes.get(i);
                if (n != null) out.put(i, n.sum());
            }
            return out;
        }

        void failed(String why) {
            failures.increment();
            lastError = why;
            lastErrorAt = System.currentTimeMillis();
        }

        /** The recent response time in ms (an average weighing the last 8 or so most), or -1 if none. */
        long recentMillis() {
            long r = recentNanos;
            return r < 0 ? -1 : r / 1_000_000;
        }
    }

    /** A group's response times, in Prometheus's default buckets (seconds). */
    static final class Histogram {
        static final double[] BOUNDS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
        private static final long[] BOUND_NANOS = new long[BOUNDS.length];

        static {
            for (int i = 0; i < BOUNDS.length; i++) BOUND_NANOS[i] = (long) (BOUNDS[i] * 1e9);
        }

        private final LongAdder[] counts = new LongAdder[BOUNDS.length + 1]; // the last: over every bound
        private final LongAdder sumNanos = new LongAdder();

        Histogram() {
            for (int i = 0; i < counts.length; i++) counts[i] = new LongAdder();
        }

        void observe(long nanos) {
            int i = 0;
            while (i < BOUND_NANOS.length && nanos > BOUND_NANOS[i]) i++;
            counts[i].increment();
            sumNanos.add(nanos);
        }

        /** The cumulative counts, one per bound and then +Inf (the total), as Prometheus wants them. */
        long[] cumulative() {
            long[] out = new long[counts.length];
            long sum = 0;
            for (int i = 0; i < counts.length; i++) out[i] = sum += counts[i].sum();
            return out;
        }

        double sumSeconds() {
            return sumNanos.sum() / 1e9;
        }
    }
}
