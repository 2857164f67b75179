import com.quorumlm.CheckoutOptions;
import com.quorumlm.DeniedException;
import com.quorumlm.LicenseClient;
import com.quorumlm.LicenseException;
import com.quorumlm.LicenseSession;
import com.quorumlm.Seat;
import com.quorumlm.UnreachableException;
import java.time.Duration;

/**
 * Checks a feature out, works, checks it in.
 *
 * <pre>
 * QLM_SERVERS=a:7400,b:7400,c:7400 java -Djna.library.path=target/debug \
 *     -cp /usr/share/java/jna.jar:target/java/quorumlm.jar:target/java/examples Checkout vhdl-editor 2
 * </pre>
 *
 * Arguments: the feature (vhdl-editor) and the seconds of "work" (1). The license sources come
 * from EXAMPLE_LICENSE, QLM_LICENSE or QLM_SERVERS. Exit status: 0 done, 2 denied, 3 no server
 * answered, 1 any other failure.
 */
public final class Checkout {
    public static void main(String[] args) throws InterruptedException {
        String feature = args.length > 0 ? args[0] : "vhdl-editor";
        long seconds = args.length > 1 ? Long.parseLong(args[1]) : 1;
        System.out.println("libquorumlm " + LicenseClient.libraryVersion());
        try (LicenseClient client = LicenseClient.fromEnv("EXAMPLE_LICENSE");
                LicenseSession session = client.openSession(Duration.ofSeconds(30))) {
            session.onLost((reason, message) -> System.err.println("license lost (" + reason + "): " + message));
            // Wait up to a minute for a seat when all are taken; the seat is checked in when
            // the block ends, however it ends.
            CheckoutOptions options = CheckoutOptions.defaults().waitUpTo(Duration.ofMinutes(1));
            try (Seat seat = session.checkout(feature, options)) {
                System.out.println("checked out " + seat.feature() + " " + seat.version() + " from " + seat.source());
                Thread.sleep(seconds * 1000);
            }
            System.out.println("checked in " + feature);
        } catch (DeniedException e) {
            System.err.println("denied (" + e.reason() + "): " + e.getMessage());
            e.holders().forEach(holder -> System.err.println("  held by " + holder));
            System.exit(2);
        } catch (UnreachableException e) {
            System.err.println("no license server answered: " + e.getMessage());
            System.exit(3);
        } catch (LicenseException e) {
            System.err.println("license error " + e.status() + ": " + e.getMessage());
            System.exit(1);
        }
    }
}
