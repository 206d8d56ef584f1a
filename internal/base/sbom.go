package base

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// SPDX returns an SPDX 2.3 JSON document listing every package the lock
// pins: Debian packages, Python distributions, npm packages and jars.
func SPDX(l *Lock, imageName string, created time.Time) ([]byte, error) {
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	type pkg struct {
		SPDXID           string `json:"SPDXID"`
		Name             string `json:"name"`
		VersionInfo      string `json:"versionInfo,omitempty"`
		DownloadLocation string `json:"downloadLocation"`
		ExternalRefs     []any  `json:"externalRefs,omitempty"`
		Checksums        []any  `json:"checksums,omitempty"`
	}
	purl := func(p string) []any {
		return []any{map[string]string{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p}}
	}
	var pkgs []pkg
	bad := regexp.MustCompile(`[^A-Za-z0-9.-]`)
	add := func(kind, name, version, p, sha string) {
		id := "SPDXRef-" + bad.ReplaceAllString(kind+"-"+name+"-"+version, "-")
		pk := pkg{SPDXID: id, Name: name, VersionInfo: version, DownloadLocation: "NOASSERTION", ExternalRefs: purl(p)}
		if sha != "" {
			pk.Checksums = []any{map[string]string{"algorithm": "SHA256", "checksumValue": sha}}
		}
		pkgs = append(pkgs, pk)
	}
	layers := make([]string, 0, len(l.Layers))
	for n := range l.Layers {
		layers = append(layers, n)
	}
	sort.Strings(layers)
	for _, n := range layers {
		ll := l.Layers[n]
		for _, d := range ll.Debs {
			add("deb", d.Name, d.Version, fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s&distro=%s", d.Name, d.Version, d.Arch, l.SuiteName()), d.SHA256)
		}
		for _, p := range ll.Pip {
			name, version, _ := strings.Cut(p, "==")
			add("pypi", name, version, fmt.Sprintf("pkg:pypi/%s@%s", strings.ToLower(name), version), "")
		}
		for _, p := range ll.Npm {
			i := strings.LastIndex(p, "@")
			if i <= 0 {
				continue
			}
			add("npm", p[:i], p[i+1:], "pkg:npm/"+p, "")
		}
		// The runtime jlink links is made from these packages' jmods.
		for _, d := range ll.Jlink {
			add("deb", d.Name, d.Version, fmt.Sprintf("pkg:deb/debian/%s@%s?arch=%s&distro=%s", d.Name, d.Version, d.Arch, l.SuiteName()), d.SHA256)
		}
		for _, a := range ll.Maven {
			add("jar", a.Name, "", "pkg:generic/"+a.Name, a.SHA256)
		}
	}
	doc := map[string]any{
		"spdxVersion":       "SPDX-2.3",
		"dataLicense":       "CC0-1.0",
		"SPDXID":            "SPDXRef-DOCUMENT",
		"name":              imageName,
		"documentNamespace": "https://lambdabox.dev/spdx/" + l.Runtime + "/" + hashJSON(l),
		"creationInfo": map[string]any{
			"created":  created.UTC().Format(time.RFC3339),
			"creators": []string{"Tool: lambdabox"},
		},
		"packages": pkgs,
	}
	return json.MarshalIndent(doc, "", "  ")
}
