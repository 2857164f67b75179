import com.quorumlm.LicenseClient;
import com.quorumlm.LicenseException;
import com.quorumlm.LicenseSession;
import com.quorumlm.Seat;

/**
 * One Java client's closed loop for `make bench-sdk`: checkout + checkin of FEATURE through
 * the JNA binding, with no think time, for a warm-up and then a measured window.
 *
 * <pre>java Bench SERVERS FEATURE WARMUP_SECONDS SECONDS  ->  "ops N seconds S errors E"</pre>
 */
public final class Bench {
    private static long errors;

    private static long loop(LicenseSession session, String feature, long untilNanos) {
        long ops = 0;
        while (System.nanoTime() < untilNanos) {
            try {
                Seat seat = session.checkout(feature);
                seat.checkin();
                ops++;
            } catch (LicenseException e) {
                errors++;
            }
        }
        return ops;
    }

    public static void main(String[] args) throws Exception {
        String servers = args[0];
        String feature = args[1];
        long warmup = (long) (Double.parseDouble(args[2]) * 1e9);
        long window = (long) (Double.parseDouble(args[3]) * 1e9);
        try (LicenseClient client = LicenseClient.fromServers(servers);
             LicenseSession session = client.openSession()) {
            loop(session, feature, System.nanoTime() + warmup);
            errors = 0;
            long start = System.nanoTime();
            long ops = loop(session, feature, start + window);
            double seconds = (System.nanoTime() - start) / 1e9;
            System.out.printf("ops %d seconds %.3f errors %d%n", ops, seconds, errors);
        }
    }
}
