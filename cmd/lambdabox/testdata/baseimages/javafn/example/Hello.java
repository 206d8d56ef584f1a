package example;

import java.security.KeyStore;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

// A handler with no compile-time dependencies: the Java RIC calls a
// one-argument method with the event deserialised into a Map.
public class Hello {
    public Map<String, String> handleRequest(Map<String, Object> event) throws Exception {
        System.out.println("hello from java");
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init((KeyStore) null);
        int n = ((X509TrustManager) tmf.getTrustManagers()[0]).getAcceptedIssuers().length;
        Map<String, String> out = new LinkedHashMap<>();
        out.put("message", "Hello, " + event.get("name") + "!");
        out.put("cacerts", n > 50 ? "ok" : "only " + n);
        return out;
    }
}
