module github.com/pktvisor-go/pktvisor/tools/victoriametrics

go 1.27.2

require github.com/VictoriaMetrics/VictoriaMetrics v1.154.1

require (
	cloud.google.com/go/compute/metadata v0.10.0 // indirect
	github.com/VictoriaMetrics/easyproto v1.2.0 // indirect
	github.com/VictoriaMetrics/fastcache v1.13.3 // indirect
	github.com/VictoriaMetrics/metrics v1.44.1 // indirect
	github.com/VictoriaMetrics/metricsql v0.87.5 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/golang/snappy v1.0.0 // indirect
	github.com/klauspost/compress v1.20.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fastjson v1.6.10 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/fasttemplate v1.2.2 // indirect
	github.com/valyala/gozstd v1.26.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	github.com/valyala/quicktemplate v1.8.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/oauth2 v0.37.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)

// The proxy does not serve the versions v1.154.1 asks for; these are the nearest it does.
replace (
	github.com/VictoriaMetrics/metrics => github.com/VictoriaMetrics/metrics v1.45.0
	github.com/VictoriaMetrics/metricsql => github.com/VictoriaMetrics/metricsql v0.87.3
)
