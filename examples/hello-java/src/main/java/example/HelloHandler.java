package example;

import java.util.LinkedHashMap;
import java.util.Map;

// A Java function for lambdabox build: no compile-time dependencies; the
// Java RIC calls a one-argument method with the event as a Map.
public class HelloHandler {
    public Map<String, String> handleRequest(Map<String, Object> event) {
        System.out.println("hello from java");
        Map<String, String> out = new LinkedHashMap<>();
        out.put("message", "Hello, " + event.getOrDefault("name", "world") + "!");
        out.put("java", System.getProperty("java.specification.version"));
        return out;
    }
}
