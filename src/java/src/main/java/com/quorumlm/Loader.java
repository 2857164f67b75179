package com.quorumlm;

import com.sun.jna.Library;
import com.sun.jna.Native;
import java.util.Map;

/** Loads libquorumlm once, with UTF-8 strings. */
final class Loader {
    static final QuorumLM LIBRARY = load();

    private Loader() {}

    private static QuorumLM load() {
        Map<String, Object> options = Map.of(Library.OPTION_STRING_ENCODING, "UTF-8");
        String file = System.getProperty("quorumlm.library");
        String name = file != null && !file.isEmpty() ? file : "quorumlm";
        try {
            return Native.load(name, QuorumLM.class, options);
        } catch (UnsatisfiedLinkError e) {
            UnsatisfiedLinkError hint = new UnsatisfiedLinkError(
                    "cannot load libquorumlm (" + name + "): run java with"
                            + " -Djna.library.path=<directory of libquorumlm.so>"
                            + " or -Dquorumlm.library=<file>: " + e.getMessage());
            hint.initCause(e);
            throw hint;
        }
    }
}
