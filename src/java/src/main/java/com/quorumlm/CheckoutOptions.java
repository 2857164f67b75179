package com.quorumlm;

import java.time.Duration;
import java.time.Instant;
import java.util.Objects;

/**
 * What a checkout asks for besides the feature: a lowest version, a count, whether to wait in
 * the feature's queue and for how long, and a borrow. Immutable; each {@code with} method
 * returns a copy.
 *
 * <pre>{@code
 * CheckoutOptions.defaults().withVersion("4.0").withCount(2).waitUpTo(Duration.ofMinutes(5))
 * }</pre>
 */
public final class CheckoutOptions {
    private static final CheckoutOptions DEFAULTS = new CheckoutOptions(null, 1, null, null);

    private final String version;
    private final int count;
    private final Duration wait;
    private final Instant borrowUntil;

    private CheckoutOptions(String version, int count, Duration wait, Instant borrowUntil) {
        this.version = version;
        this.count = count;
        this.wait = wait;
        this.borrowUntil = borrowUntil;
    }

    /** Any version, one seat, no queueing, no borrow. */
    public static CheckoutOptions defaults() {
        return DEFAULTS;
    }

    /** The lowest acceptable version ("4.0"); null for any. */
    public CheckoutOptions withVersion(String version) {
        return new CheckoutOptions(version, count, wait, borrowUntil);
    }

    /** Seats (or tokens), 1 to 1,000,000. */
    public CheckoutOptions withCount(int count) {
        return new CheckoutOptions(version, count, wait, borrowUntil);
    }

    /**
     * Wait in the feature's queue when every seat is taken, up to {@code wait} (then
     * {@link WaitTimeoutException}); null: do not queue, a full feature is a denial.
     */
    public CheckoutOptions waitUpTo(Duration wait) {
        if (wait != null && wait.isNegative()) {
            throw new IllegalArgumentException("wait must not be negative: " + wait);
        }
        return new CheckoutOptions(version, count, wait, borrowUntil);
    }

    /**
     * Borrow until {@code until}: the seat needs no heartbeat until then. Use
     * {@link Seat#keep()} so that closing the seat does not check it in. Null: no borrow.
     */
    public CheckoutOptions borrowUntil(Instant until) {
        return new CheckoutOptions(version, count, wait, until);
    }

    public String version() {
        return version;
    }

    public int count() {
        return count;
    }

    /** The longest wait in the queue; null when the checkout does not queue. */
    public Duration waitLimit() {
        return wait;
    }

    public Instant borrowUntilInstant() {
        return borrowUntil;
    }

    /** The C {@code wait_ms}: -1 for no queueing. */
    long waitMillis() {
        if (wait == null) {
            return -1;
        }
        try {
            return wait.toMillis();
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    /** The C {@code borrow_until_unix_s}: 0 for no borrow. */
    long borrowUnixSeconds() {
        return borrowUntil == null ? 0 : Math.max(1, borrowUntil.getEpochSecond());
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof CheckoutOptions o
                && Objects.equals(version, o.version)
                && count == o.count
                && Objects.equals(wait, o.wait)
                && Objects.equals(borrowUntil, o.borrowUntil);
    }

    @Override
    public int hashCode() {
        return Objects.hash(version, count, wait, borrowUntil);
    }

    @Override
    public String toString() {
        return "CheckoutOptions[version=" + version + ", count=" + count + ", wait=" + wait
                + ", borrowUntil=" + borrowUntil + "]";
    }
}
