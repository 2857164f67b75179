package com.quorumlm;

import java.util.ArrayList;
import java.util.List;

/** Status codes to exceptions. */
final class Errors {
    private Errors() {}

    /**
     * Throws the exception for {@code code} unless it is {@link Status#OK}. Must run on the
     * thread that made the failed call, right after it: the library keeps the message and the
     * denial per thread.
     */
    static void check(int code) throws LicenseException {
        if (code == Status.OK.code()) {
            return;
        }
        QuorumLM c = QuorumLM.get();
        String message = orEmpty(c.qlm_last_error());
        throw switch (Status.of(code)) {
            case INVALID_ARGUMENT -> new InvalidArgumentException(message);
            case NO_SERVERS -> new NoServersException(message);
            case UNREACHABLE -> new UnreachableException(message);
            case DENIED -> new DeniedException(orEmpty(c.qlm_last_denial_reason()), message, holders(c));
            case TIMEOUT -> new WaitTimeoutException(message);
            case NODE_LOCKED_REFUSED -> new NodeLockedRefusedException(message);
            case SESSION_LOST -> new SessionLostException(message);
            default -> new LicenseException(code, message);
        };
    }

    private static List<Holder> holders(QuorumLM c) {
        long count = c.qlm_last_denial_holder_count().longValue();
        List<Holder> holders = new ArrayList<>();
        for (long i = 0; i < count; i++) {
            String text = c.qlm_last_denial_holder(new QuorumLM.SizeT(i));
            if (text != null) {
                holders.add(Holder.parse(text));
            }
        }
        return holders;
    }

    private static String orEmpty(String text) {
        return text == null ? "" : text;
    }

    /** A NUL-terminated UTF-8 string in a fixed C array. */
    static String cString(byte[] bytes) {
        int end = 0;
        while (end < bytes.length && bytes[end] != 0) {
            end++;
        }
        return new String(bytes, 0, end, java.nio.charset.StandardCharsets.UTF_8);
    }
}
