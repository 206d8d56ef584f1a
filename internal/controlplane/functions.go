package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lambdabox/lambdabox/internal/function"
	"github.com/lambdabox/lambdabox/internal/store"
)

// target resolves the {name} path element and the Qualifier parameter.
func (s *Server) target(r *http.Request) (name, qual string, e *apiError) {
	raw := r.PathValue("name")
	name, qual, ok := function.ParseName(raw)
	if !ok {
		return "", "", &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + raw + "' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: " + function.NamePattern}
	}
	// An ARN of another region or account names none of these functions.
	switch region, account := function.Owner(raw); {
	case region != "" && region != s.cfg.Region:
		return "", "", notFound("Functions from '" + region + "' are not reachable in this region ('" + s.cfg.Region + "')")
	case account != "" && account != s.cfg.AccountID:
		return "", "", notFound("Function not found: " + raw)
	}
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		if !function.ValidQualifier(q) {
			return "", "", &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
				Msg: "1 validation error detected: Value '" + q + "' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: " + function.QualifierPattern}
		}
		if qual != "" && qual != q {
			return "", "", badParam("The derived qualifier from the function name does not match the specified qualifier.")
		}
		qual = q
	}
	return name, qual, nil
}

func isVersion(q string) bool {
	n, err := strconv.Atoi(q)
	return err == nil && n > 0 && strconv.Itoa(n) == q
}

// load returns the version a qualifier names: $LATEST (""), a number, or
// an alias's version.
func (s *Server) load(name, qual string) (store.Function, *apiError) {
	notFound := func() *apiError {
		arn := s.arn(name)
		if qual != "" {
			arn += ":" + qual
		}
		return notFound("Function not found: " + arn)
	}
	if qual != "" && qual != "$LATEST" && !isVersion(qual) {
		a, err := s.st.Alias(name, qual)
		if errors.Is(err, store.ErrNotFound) {
			return store.Function{}, notFound()
		} else if err != nil {
			return store.Function{}, serviceError(err)
		}
		qual = a.Version
	}
	var f store.Function
	var err error
	if qual == "" || qual == "$LATEST" {
		f, err = s.st.Function(name)
	} else {
		f, err = s.st.Version(name, qual)
	}
	if errors.Is(err, store.ErrNotFound) {
		return f, notFound()
	} else if err != nil {
		return f, serviceError(err)
	}
	return f, nil
}

func (s *Server) inProgress(name string) *apiError {
	return conflict("The operation cannot be performed at this time. An update is in progress for resource: " + s.arn(name))
}

func (s *Server) createFunction(w http.ResponseWriter, r *http.Request) *apiError {
	var in createIn
	if e := decode(r, &in); e != nil {
		return e
	}
	if e := in.validate(); e != nil {
		return e
	}
	now := time.Now()
	f := store.Function{
		Name: in.FunctionName, PackageType: in.PackageType, Runtime: in.Runtime, Handler: in.Handler, Role: in.Role,
		Description: in.Description, ImageURI: in.Code.ImageUri, Timeout: 3, MemorySize: 128, Arch: in.Architectures,
		State: "Pending", StateReason: "The function is being created.", StateReasonCode: "Creating",
		LastUpdateStatus: "InProgress", LastModified: now, RevisionID: uuid.NewString(),
		TenantIsolation: in.TenancyConfig != nil,
	}
	if in.Timeout != nil {
		f.Timeout = *in.Timeout
	}
	if in.MemorySize != nil {
		f.MemorySize = *in.MemorySize
	}
	if in.EphemeralStorage != nil {
		f.Ephemeral = in.EphemeralStorage.Size
	}
	if in.Environment != nil {
		f.Env = in.Environment.Variables
	}
	s.codeMu.Lock()
	err := func() error {
		if f.PackageType == "Zip" {
			sha, size, err := s.st.PutCode(in.Code.ZipFile)
			if err != nil {
				return codeError(err)
			}
			f.CodeSha256, f.CodeSize = sha, size
		} else {
			sum := sha256.Sum256([]byte(f.ImageURI))
			f.CodeSha256 = hex.EncodeToString(sum[:])
		}
		return s.st.CreateFunction(f)
	}()
	s.codeMu.Unlock()
	if errors.Is(err, store.ErrExists) {
		return conflict("Function already exist: " + f.Name)
	} else if err != nil {
		return storeError(err, "Function "+f.Name)
	}
	f.Version = "$LATEST"
	if in.Publish {
		return s.deployAndPublish(w, r, http.StatusCreated, f)
	}
	s.spawn(f.Name)
	return reply(w, http.StatusCreated, s.configOut(f))
}

// deployAndPublish serves Publish: true of a create or code update: the
// deploy runs before the answer, which is the new version's configuration
// (f's, the $LATEST just stored, if the deploy failed).
func (s *Server) deployAndPublish(w http.ResponseWriter, r *http.Request, status int, f store.Function) *apiError {
	if !s.deployLatest(r.Context(), f.Name, true) {
		if now, err := s.st.Function(f.Name); err == nil {
			f = now
		}
		return reply(w, status, s.configOut(f))
	}
	v, e := s.publish(r.Context(), f.Name, publishIn{})
	if e != nil {
		return e
	}
	return reply(w, status, s.configOut(v))
}

// spawn deploys the function's $LATEST in the background.
func (s *Server) spawn(name string) {
	started := s.background(func() { s.deployLatest(s.ctx, name, true) })
	if !started {
		s.log.Warn("the control plane is closed: the function deploys at the next start", "function", name)
	}
}

// deployLatest deploys the function's $LATEST as the store has it now and
// records the outcome in its state, if record; it reports success.
func (s *Server) deployLatest(ctx context.Context, name string, record bool) bool {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	f, err := s.st.Function(name)
	if err != nil {
		return false // deleted meanwhile
	}
	fn, err := s.runnerFunction(f)
	if err == nil {
		err = s.run.Deploy(ctx, fn)
	}
	if ctx.Err() != nil {
		return false // shutting down: the next Start deploys it
	}
	if err != nil {
		s.log.Warn("deploying a function failed", "function", name, "error", err)
		if !record && s.deployRunning(ctx, f) {
			s.keepURLPort(name)
		}
	}
	if err == nil {
		s.keepURLPort(name)
	}
	if !record && err == nil && f.State == "Active" && f.LastUpdateStatus == "Successful" && f.Running != nil {
		return true
	}
	deployed := f
	_, uerr := s.st.UpdateFunction(name, func(f *store.Function) error {
		code := "InvalidEntrypoint"
		if f.PackageType == "Image" {
			code = "InvalidImage"
		}
		switch {
		case err == nil:
			f.State, f.StateReason, f.StateReasonCode = "Active", "", ""
			f.LastUpdateStatus, f.LastUpdateReason, f.LastUpdateCode = "Successful", "", ""
			f.Running = running(deployed)
		case f.State == "Pending" || f.State == "Failed":
			f.State, f.StateReason, f.StateReasonCode = "Failed", err.Error(), code
			f.LastUpdateStatus, f.LastUpdateReason, f.LastUpdateCode = "Failed", err.Error(), code
		default:
			f.LastUpdateStatus, f.LastUpdateReason, f.LastUpdateCode = "Failed", err.Error(), code
		}
		return nil
	})
	if uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
		s.log.Warn("recording a function's state failed", "function", name, "error", uerr)
	}
	if err == nil {
		s.prune()
	}
	return err == nil
}

// running is the snapshot of f, as it ran, that Function.Running keeps.
func running(f store.Function) *store.Function {
	f.Running, f.URL, f.ReservedConcurrency = nil, nil, nil
	return &f
}

// deployRunning deploys, in place of $LATEST f whose code cannot start
// (at a start, after an update that failed), the code and configuration
// that ran before, as Lambda keeps them available; it reports success.
// deployMu is held.
func (s *Server) deployRunning(ctx context.Context, f store.Function) bool {
	if f.Running == nil {
		return false
	}
	prev := *f.Running
	prev.ReservedConcurrency, prev.URL = f.ReservedConcurrency, f.URL // function-wide: today's
	fn, err := s.runnerFunction(prev)
	if err == nil {
		err = s.run.Deploy(ctx, fn)
	}
	if err != nil {
		s.log.Warn("the code that ran before cannot start either", "function", f.Name, "error", err)
		return false
	}
	s.log.Warn("the function's last update cannot start: serving its code and configuration of before until it is updated again", "function", f.Name)
	return true
}

// keepURLPort records the port the function's URL answers on, when it
// has one, so that the next deploy (e.g. at the next start) serves it
// there again. deployMu is held.
func (s *Server) keepURLPort(name string) {
	urler, ok := s.run.(URLer)
	if !ok {
		return
	}
	port := urlPort(urler.FunctionURL(name))
	if port == 0 {
		return
	}
	_, err := s.st.UpdateFunction(name, func(f *store.Function) error {
		if f.URL != nil {
			f.URL.Port = port
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("recording a function URL's port failed", "function", name, "error", err)
	}
}

// errGone is a version deleted before its deploy.
var errGone = errors.New("deleted meanwhile")

// deployVersion deploys a published version, with the function's
// reserved concurrency; errGone if it was deleted meanwhile (a delete
// undeploys under deployMu after removing from the store, so reading the
// store again under it never leaves a deleted version running). A delete
// does not wait for deployMu to remove the version and prune its code: a
// deploy that fails because of it finds the version gone, and is errGone
// too, not a failure.
func (s *Server) deployVersion(ctx context.Context, v store.Function) error {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	v, err := s.st.Version(v.Name, v.Version)
	if errors.Is(err, store.ErrNotFound) {
		return errGone
	} else if err != nil {
		return err
	}
	fn, err := s.runnerFunction(v)
	if err == nil {
		if latest, lerr := s.st.Function(v.Name); lerr == nil {
			fn.ReservedConcurrency = latest.ReservedConcurrency
		}
		err = s.run.Deploy(ctx, fn)
	}
	if err != nil {
		if _, verr := s.st.Version(v.Name, v.Version); errors.Is(verr, store.ErrNotFound) {
			return errGone
		}
		s.log.Warn("deploying a version failed", "function", v.Name, "version", v.Version, "error", err)
		return err
	}
	return nil
}

// redeploy deploys again every version of a function whose function-wide
// settings (reserved concurrency, URL) changed.
func (s *Server) redeploy(ctx context.Context, name string) *apiError {
	if !s.deployLatest(ctx, name, false) {
		f, _ := s.st.Function(name)
		if f.State == "Active" {
			return serviceError(fmt.Errorf("deploying %s failed: %s", name, f.LastUpdateReason))
		}
	}
	versions, err := s.st.Versions(name)
	if err != nil {
		return serviceError(err)
	}
	for _, v := range versions {
		if err := s.deployVersion(ctx, v); err != nil && !errors.Is(err, errGone) {
			return serviceError(fmt.Errorf("deploying %s version %s: %w", name, v.Version, err))
		}
	}
	return nil
}

func (s *Server) prune() {
	s.codeMu.Lock()
	defer s.codeMu.Unlock()
	if err := s.st.Prune(); err != nil {
		s.log.Warn("pruning unused code failed", "error", err)
	}
}

type codeOut struct {
	RepositoryType   string
	Location         string `json:",omitempty"`
	ImageUri         string `json:",omitempty"`
	ResolvedImageUri string `json:",omitempty"`
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	f, e := s.load(name, qual)
	if e != nil {
		return e
	}
	out := struct {
		Configuration configOut
		Code          codeOut
		Concurrency   *concurrencyIn `json:",omitempty"`
		Tags          map[string]string
	}{Configuration: s.configOut(f), Tags: map[string]string{}}
	if f.PackageType == "Image" {
		out.Code = codeOut{RepositoryType: "ECR", ImageUri: f.ImageURI, ResolvedImageUri: f.ImageURI}
	} else {
		// Where Lambda gives a presigned link to the zip: one here.
		out.Code = codeOut{RepositoryType: "S3", Location: "http://" + r.Host + "/lambdabox/code/" + url.PathEscape(f.CodeSha256)}
	}
	if latest, err := s.st.Function(name); err == nil && latest.ReservedConcurrency != nil {
		out.Concurrency = &concurrencyIn{ReservedConcurrentExecutions: latest.ReservedConcurrency}
	}
	return reply(w, http.StatusOK, out)
}

// getCode serves a function's zip (GetFunction's Code.Location), named by
// its CodeSha256.
func (s *Server) getCode(w http.ResponseWriter, r *http.Request) *apiError {
	zipped, err := s.st.Code(r.PathValue("sha"))
	if err != nil {
		return storeError(err, "Code "+r.PathValue("sha"))
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.Itoa(len(zipped)))
	_, _ = w.Write(zipped)
	return nil
}

func (s *Server) getConfiguration(w http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	f, e := s.load(name, qual)
	if e != nil {
		return e
	}
	return reply(w, http.StatusOK, s.configOut(f))
}

// page applies Marker and MaxItems to a list whose items have the keys
// keys, ascending and unique in the list's order. A page holds at most
// most items, whatever MaxItems asks (AWS caps ListFunctions and
// ListVersionsByFunction at 50); its NextMarker names the key of its last
// item, so that items deleted or added between pages skip or repeat
// none of the others.
func page(r *http.Request, keys []string, most int) (from, to int, next string, e *apiError) {
	q := r.URL.Query()
	n := min(50, most)
	if m := q.Get("MaxItems"); m != "" {
		v, err := strconv.Atoi(m)
		if err != nil || v < 1 || v > 10000 {
			return 0, 0, "", &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
				Msg: "1 validation error detected: Value '" + m + "' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000"}
		}
		n = min(v, most)
	}
	if m := q.Get("Marker"); m != "" {
		last, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil || len(last) == 0 {
			return 0, 0, "", badParam("Invalid marker: " + m)
		}
		from = sort.SearchStrings(keys, string(last))
		if from < len(keys) && keys[from] == string(last) {
			from++
		}
	}
	to = min(from+n, len(keys))
	if to < len(keys) {
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[to-1]))
	}
	return from, to, next, nil
}

// versionOrder is a version's key in a list: $LATEST first, then the
// versions in number order.
func versionOrder(version string) string {
	n, _ := strconv.Atoi(version) // $LATEST: 0
	return fmt.Sprintf("%010d", n)
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request) *apiError {
	fns, err := s.st.Functions()
	if err != nil {
		return serviceError(err)
	}
	all := r.URL.Query().Get("FunctionVersion")
	if all != "" && all != "ALL" {
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + all + "' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]"}
	}
	var (
		list []configOut
		keys []string // a NUL sorts before any character of a name
	)
	for _, f := range fns {
		list, keys = append(list, s.configOut(f)), append(keys, f.Name+"\x00"+versionOrder(f.Version))
		if all == "ALL" {
			versions, err := s.st.Versions(f.Name)
			if err != nil {
				return serviceError(err)
			}
			for _, v := range versions {
				list, keys = append(list, s.configOut(v)), append(keys, v.Name+"\x00"+versionOrder(v.Version))
			}
		}
	}
	from, to, next, e := page(r, keys, 50)
	if e != nil {
		return e
	}
	return reply(w, http.StatusOK, struct {
		Functions  []configOut
		NextMarker string `json:",omitempty"`
	}{append([]configOut{}, list[from:to]...), next})
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	ctx := r.Context()
	switch {
	case qual == "$LATEST":
		return badParam("$LATEST version cannot be deleted without deleting the function.")
	case qual != "" && !isVersion(qual):
		return badParam("Deletion of aliases is not supported by DeleteFunction: use DeleteAlias")
	case qual != "":
		if err := s.st.DeleteVersion(name, qual); errors.As(err, new(*store.InUseError)) {
			return conflict("Unable to delete version " + qual + " of " + s.arn(name) + ": " + err.Error() + ". Update or delete the alias first.")
		} else if err != nil {
			return storeError(err, "Function "+s.arn(name)+":"+qual)
		}
		s.deployMu.Lock()
		err := s.run.Undeploy(ctx, name, qual)
		s.deployMu.Unlock()
		if err != nil {
			s.log.Warn("stopping a version failed", "function", name, "version", qual, "error", err)
		}
	default:
		s.codeMu.Lock()
		_, versions, aliases, err := s.st.DeleteFunction(name)
		s.codeMu.Unlock()
		if err != nil {
			return storeError(err, "Function "+s.arn(name))
		}
		s.deployMu.Lock()
		var errs []error
		for _, a := range aliases {
			errs = append(errs, s.run.Route(name, a.Name, nil))
		}
		for _, v := range versions {
			errs = append(errs, s.run.Undeploy(ctx, name, v.Version))
		}
		errs = append(errs, s.run.Undeploy(ctx, name, "$LATEST"))
		s.deployMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			s.log.Warn("stopping a deleted function failed", "function", name, "error", err)
		}
	}
	w.Header().Set("X-Amzn-RequestId", uuid.NewString())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// update changes $LATEST with fn and starts its deploy; it refuses while
// a deploy runs, or if revision is given and is not the current one.
// stored, if not nil, runs once the store has the change (or refused it).
func (s *Server) update(w http.ResponseWriter, r *http.Request, revision string, publish bool, stored func(), fn func(*store.Function) *apiError) *apiError {
	if stored != nil {
		defer func() {
			if stored != nil {
				stored()
			}
		}()
	}
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	if qual != "" && qual != "$LATEST" {
		return badParam("Only the $LATEST version of a function can be updated")
	}
	f, err := s.st.UpdateFunction(name, func(f *store.Function) error {
		switch {
		case f.LastUpdateStatus == "InProgress":
			return s.inProgress(name)
		case revision != "" && revision != f.RevisionID:
			return errPrecondition
		}
		if e := fn(f); e != nil {
			return e
		}
		f.LastUpdateStatus, f.LastUpdateReason, f.LastUpdateCode = "InProgress", "", ""
		if f.State == "Failed" {
			f.State, f.StateReason, f.StateReasonCode = "Pending", "The function is being created.", "Creating"
		}
		f.LastModified, f.RevisionID = time.Now(), uuid.NewString()
		return nil
	})
	if stored != nil {
		stored()
		stored = nil
	}
	if err != nil {
		return storeError(err, "Function "+s.arn(name))
	}
	if publish {
		return s.deployAndPublish(w, r, http.StatusOK, f)
	}
	s.spawn(name)
	return reply(w, http.StatusOK, s.configOut(f))
}

func (s *Server) updateCode(w http.ResponseWriter, r *http.Request) *apiError {
	var in updateCodeIn
	if e := decode(r, &in); e != nil {
		return e
	}
	var sha string
	var size int64
	var stored func()
	if len(in.ZipFile) > 0 {
		// Until the record names the code, Prune must not run.
		s.codeMu.Lock()
		stored = s.codeMu.Unlock
		var err error
		if sha, size, err = s.st.PutCode(in.ZipFile); err != nil {
			stored()
			return codeError(err)
		}
	}
	return s.update(w, r, in.RevisionId, in.Publish, stored, func(f *store.Function) *apiError {
		switch {
		case f.PackageType == "Zip" && sha == "":
			if in.S3Bucket != "" {
				return badParam("Code from S3 (S3Bucket, S3Key) is not supported by lambdabox: upload it as ZipFile")
			}
			return badParam("Please provide a source for function code: ZipFile")
		case f.PackageType == "Zip" && in.ImageUri != "":
			return badParam("Please don't provide ImageUri when updating a function with packageType Zip.")
		case f.PackageType == "Image" && in.ImageUri == "":
			return badParam("Please provide ImageUri when updating a function with packageType Image.")
		case f.PackageType == "Image":
			f.ImageURI = in.ImageUri
			sum := sha256.Sum256([]byte(in.ImageUri))
			f.CodeSha256 = hex.EncodeToString(sum[:])
		default:
			f.CodeSha256, f.CodeSize = sha, size
		}
		if len(in.Architectures) > 0 {
			f.Arch = in.Architectures
		}
		return nil
	})
}

func (s *Server) updateConfiguration(w http.ResponseWriter, r *http.Request) *apiError {
	var in updateConfigIn
	if e := decode(r, &in); e != nil {
		return e
	}
	var eph *int
	if in.EphemeralStorage != nil {
		eph = &in.EphemeralStorage.Size
	}
	if e := checkLimits(in.Timeout, in.MemorySize, eph, in.Role, in.Description); e != nil {
		return e
	}
	if e := checkEnv(in.Environment); e != nil {
		return e
	}
	return s.update(w, r, in.RevisionId, false, nil, func(f *store.Function) *apiError {
		if in.Runtime != nil || in.Handler != nil {
			if f.PackageType == "Image" {
				return badParam("Runtime and Handler are not supported for a function of PackageType Image")
			}
		}
		if in.Runtime != nil {
			if e := checkRuntime(*in.Runtime); e != nil {
				return e
			}
			f.Runtime = *in.Runtime
		}
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&f.Handler, in.Handler)
		set(&f.Role, in.Role)
		set(&f.Description, in.Description)
		if in.Timeout != nil {
			f.Timeout = *in.Timeout
		}
		if in.MemorySize != nil {
			f.MemorySize = *in.MemorySize
		}
		if eph != nil {
			f.Ephemeral = *eph
		}
		if in.Environment != nil {
			f.Env = in.Environment.Variables
		}
		return nil
	})
}

func (s *Server) publishVersion(w http.ResponseWriter, r *http.Request) *apiError {
	var in publishIn
	if e := decode(r, &in); e != nil {
		return e
	}
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	if qual != "" {
		return badParam("PublishVersion takes an unqualified function name")
	}
	v, e := s.publish(r.Context(), name, in)
	if e != nil {
		return e
	}
	return reply(w, http.StatusCreated, s.configOut(v))
}

// publish snapshots $LATEST as a version and deploys it.
func (s *Server) publish(ctx context.Context, name string, in publishIn) (store.Function, *apiError) {
	same := func(newest, latest store.Function) bool {
		return newest.CodeSha256 == latest.CodeSha256 && newest.Handler == latest.Handler && newest.Runtime == latest.Runtime &&
			newest.Timeout == latest.Timeout && newest.MemorySize == latest.MemorySize && newest.Ephemeral == latest.Ephemeral &&
			maps.Equal(newest.Env, latest.Env) && newest.ImageURI == latest.ImageURI && newest.Role == latest.Role
	}
	// The preconditions hold also when the newest version is returned.
	check := func(latest store.Function) error {
		switch {
		case latest.LastUpdateStatus == "InProgress" || latest.State == "Pending":
			return s.inProgress(name)
		case latest.State == "Failed":
			return badParam("The function " + name + " failed to deploy: " + latest.StateReason)
		case latest.LastUpdateStatus == "Failed":
			// Its code cannot start: a version of it would not run.
			return conflict("The operation cannot be performed at this time. The last update of the function " + name + " failed: " + strings.TrimSuffix(latest.LastUpdateReason, ".") + ". Update it again before publishing.")
		case in.RevisionId != "" && in.RevisionId != latest.RevisionID:
			return errPrecondition
		case in.CodeSha256 != "" && in.CodeSha256 != latest.CodeSha256:
			return badParam("CodeSHA256 (" + in.CodeSha256 + ") is different from current CodeSHA256 in $LATEST (" + latest.CodeSha256 + "). Please try again with the CodeSHA256 in $LATEST.")
		}
		return nil
	}
	v, err := s.st.PublishVersion(name, check, same, func(v, latest *store.Function) error {
		v.Description = in.Description
		v.LastModified, v.RevisionID = time.Now(), uuid.NewString()
		return nil
	})
	if err != nil {
		return v, storeError(err, "Function "+s.arn(name))
	}
	if err := s.deployVersion(ctx, v); errors.Is(err, errGone) {
		return v, notFound("Function not found: " + s.arn(name))
	} else if err != nil {
		return v, serviceError(fmt.Errorf("deploying version %s of %s: %w", v.Version, name, err))
	}
	return v, nil
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	if qual != "" {
		return badParam("ListVersionsByFunction takes an unqualified function name")
	}
	latest, e := s.load(name, "")
	if e != nil {
		return e
	}
	versions, err := s.st.Versions(name)
	if err != nil {
		return serviceError(err)
	}
	list, keys := []configOut{s.configOut(latest)}, []string{versionOrder(latest.Version)}
	for _, v := range versions {
		list, keys = append(list, s.configOut(v)), append(keys, versionOrder(v.Version))
	}
	from, to, next, e := page(r, keys, 50)
	if e != nil {
		return e
	}
	return reply(w, http.StatusOK, struct {
		Versions   []configOut
		NextMarker string `json:",omitempty"`
	}{list[from:to], next})
}

// validAlias: Lambda's alias pattern, (?!^[0-9]+$)([a-zA-Z0-9-_]+).
func validAlias(a string) bool {
	return a != "" && len(a) <= 128 && !isVersion(a) && strings.Trim(a, "0123456789") != "" &&
		strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

// checkRouting checks an alias's versions: they exist, and with weights
// (AWS: an alias points to at most two versions) both are published.
func (s *Server) checkRouting(name, version string, routing *routingIn) *apiError {
	if version != "$LATEST" && !isVersion(version) {
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + version + "' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)"}
	}
	if _, e := s.load(name, version); e != nil {
		if e.Status == http.StatusNotFound {
			return notFound("Function not found: " + s.arn(name) + ":" + version)
		}
		return e
	}
	if routing == nil || len(routing.AdditionalVersionWeights) == 0 {
		return nil
	}
	if len(routing.AdditionalVersionWeights) > 1 {
		return badParam("Number of items in AdditionalVersionWeights cannot be greater than 1: an alias points to at most two versions")
	}
	if version == "$LATEST" {
		return badParam("$LATEST is not supported for an alias pointing to more than 1 version: point it to a published version")
	}
	total := 0.0
	for v, wt := range routing.AdditionalVersionWeights {
		if !isVersion(v) || v == version {
			return badParam("Invalid function version " + v + " in the routing configuration: it must be a published version other than the alias's")
		}
		if _, e := s.load(name, v); e != nil {
			return e
		}
		if wt < 0 || wt > 1 {
			return badParam(fmt.Sprintf("Invalid weight %v for version %s: it must be between 0.0 and 1.0", wt, v))
		}
		total += wt
	}
	if total > 1 {
		return badParam("The sum of the additional version weights must not exceed 1.0")
	}
	return nil
}

func (s *Server) createAlias(w http.ResponseWriter, r *http.Request) *apiError {
	var in aliasIn
	if e := decode(r, &in); e != nil {
		return e
	}
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	if qual != "" {
		return badParam("CreateAlias takes an unqualified function name")
	}
	if !validAlias(in.Name) {
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + in.Name + "' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"}
	}
	if in.FunctionVersion == "" {
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value null at 'functionVersion' failed to satisfy constraint: Member must not be null"}
	}
	if e := s.checkRouting(name, in.FunctionVersion, in.RoutingConfig); e != nil {
		return e
	}
	a := store.Alias{Function: name, Name: in.Name, Version: in.FunctionVersion, RevisionID: uuid.NewString()}
	if in.Description != nil {
		a.Description = *in.Description
	}
	if in.RoutingConfig != nil {
		a.Weights = in.RoutingConfig.AdditionalVersionWeights
	}
	if err := s.st.PutAlias(a, true); errors.Is(err, store.ErrExists) {
		return conflict("Alias already exists: " + s.arn(name) + ":" + in.Name)
	} else if err != nil {
		return storeError(err, "Function "+s.arn(name))
	}
	if err := s.route(a); err != nil {
		return serviceError(err)
	}
	return reply(w, http.StatusCreated, s.aliasOut(a))
}

// route gives the Runner the alias as the store has it now (none, if it
// was deleted meanwhile), under deployMu as deletes do.
func (s *Server) route(a store.Alias) error {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	now, err := s.st.Alias(a.Function, a.Name)
	if errors.Is(err, store.ErrNotFound) {
		return s.run.Route(a.Function, a.Name, nil)
	} else if err != nil {
		return err
	}
	return s.run.Route(now.Function, now.Name, &Routing{Version: now.Version, Weights: now.Weights})
}

func (s *Server) aliasTarget(r *http.Request) (name, alias string, e *apiError) {
	name, qual, e := s.target(r)
	if e == nil && qual != "" {
		e = badParam("The function name must be unqualified")
	}
	return name, r.PathValue("alias"), e
}

func (s *Server) getAlias(w http.ResponseWriter, r *http.Request) *apiError {
	name, alias, e := s.aliasTarget(r)
	if e != nil {
		return e
	}
	a, err := s.st.Alias(name, alias)
	if err != nil {
		return storeError(err, "Alias "+s.arn(name)+":"+alias)
	}
	return reply(w, http.StatusOK, s.aliasOut(a))
}

func (s *Server) updateAlias(w http.ResponseWriter, r *http.Request) *apiError {
	var in aliasIn
	if e := decode(r, &in); e != nil {
		return e
	}
	name, alias, e := s.aliasTarget(r)
	if e != nil {
		return e
	}
	a, err := s.st.Alias(name, alias)
	if err != nil {
		return storeError(err, "Alias "+s.arn(name)+":"+alias)
	}
	if in.RevisionId != "" && in.RevisionId != a.RevisionID {
		return errPrecondition
	}
	if in.FunctionVersion != "" {
		a.Version = in.FunctionVersion
	}
	if in.Description != nil {
		a.Description = *in.Description
	}
	if in.RoutingConfig != nil {
		a.Weights = in.RoutingConfig.AdditionalVersionWeights
	}
	var routing *routingIn
	if len(a.Weights) > 0 {
		routing = &routingIn{a.Weights}
	}
	if e := s.checkRouting(name, a.Version, routing); e != nil {
		return e
	}
	a.RevisionID = uuid.NewString()
	if err := s.st.PutAlias(a, false); err != nil {
		return storeError(err, "Alias "+s.arn(name)+":"+alias)
	}
	if err := s.route(a); err != nil {
		return serviceError(err)
	}
	return reply(w, http.StatusOK, s.aliasOut(a))
}

func (s *Server) deleteAlias(w http.ResponseWriter, r *http.Request) *apiError {
	name, alias, e := s.aliasTarget(r)
	if e != nil {
		return e
	}
	if err := s.st.DeleteAlias(name, alias); err != nil && !errors.Is(err, store.ErrNotFound) {
		return serviceError(err)
	} else if err == nil {
		s.deployMu.Lock()
		err := s.run.Route(name, alias, nil)
		s.deployMu.Unlock()
		if err != nil {
			return serviceError(err)
		}
	}
	// Lambda answers 204 for an alias that does not exist, too.
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listAliases(w http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	if qual != "" {
		return badParam("ListAliases takes an unqualified function name")
	}
	if _, e := s.load(name, ""); e != nil {
		return e
	}
	aliases, err := s.st.Aliases(name)
	if err != nil {
		return serviceError(err)
	}
	list, keys := []aliasOut{}, []string{}
	for _, a := range aliases {
		if v := r.URL.Query().Get("FunctionVersion"); v == "" || v == a.Version {
			list, keys = append(list, s.aliasOut(a)), append(keys, a.Name)
		}
	}
	from, to, next, e := page(r, keys, 10000)
	if e != nil {
		return e
	}
	return reply(w, http.StatusOK, struct {
		Aliases    []aliasOut
		NextMarker string `json:",omitempty"`
	}{list[from:to], next})
}

// MaxReservedConcurrency is the most a function may reserve: the default
// account limit (1000) less the 100 Lambda keeps unreserved.
const MaxReservedConcurrency = 900

// setFunctionWide changes a function-wide setting of $LATEST and deploys
// every version again.
func (s *Server) setFunctionWide(r *http.Request, fn func(*store.Function) *apiError) (store.Function, *apiError) {
	name, qual, e := s.target(r)
	if e != nil {
		return store.Function{}, e
	}
	if qual != "" {
		return store.Function{}, badParam("This operation takes an unqualified function name")
	}
	f, err := s.st.UpdateFunction(name, func(f *store.Function) error {
		if e := fn(f); e != nil {
			return e
		}
		return nil
	})
	if err != nil {
		return f, storeError(err, "Function "+s.arn(name))
	}
	return f, s.redeploy(r.Context(), name)
}

// codeError is the answer to a zip store.PutCode refused.
func codeError(err error) *apiError {
	if errors.Is(err, store.ErrUnzippedTooLarge) {
		return badParam(fmt.Sprintf("Unzipped size must be smaller than %d bytes", store.MaxUnzippedSize))
	}
	return badParam("Could not unzip uploaded file. Please check your file, then try to upload again. (" + err.Error() + ")")
}

// invokeUnserved answers an invocation of a function the Invoke API does
// not run (it hands those on): as Lambda, one that is being created
// (Pending) or whose creation failed (Failed) gets ResourceConflictException
// with its state, and one that does not exist ResourceNotFoundException.
func (s *Server) invokeUnserved(_ http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	if f, err := s.st.Function(name); err == nil && (qual == "" || qual == "$LATEST") {
		if f.State != "Active" {
			return &apiError{Status: http.StatusConflict, Type: "ResourceConflictException",
				Msg: "The operation cannot be performed at this time. The function is currently in the following state: " + f.State}
		}
		if f.LastUpdateStatus == "Failed" { // its code could not start again, e.g. at this start
			return &apiError{Status: http.StatusConflict, Type: "ResourceConflictException",
				Msg: "The operation cannot be performed at this time. The function's code could not be started: " + strings.TrimSuffix(f.LastUpdateReason, ".") + ". Update it again."}
		}
	}
	arn := s.arn(name)
	if qual != "" {
		arn += ":" + qual
	}
	return &apiError{Status: http.StatusNotFound, Type: "ResourceNotFoundException", Msg: "Function not found: " + arn}
}

func (s *Server) putConcurrency(w http.ResponseWriter, r *http.Request) *apiError {
	var in concurrencyIn
	if e := decode(r, &in); e != nil {
		return e
	}
	if in.ReservedConcurrentExecutions == nil {
		return badParam("ReservedConcurrentExecutions is required")
	}
	n := *in.ReservedConcurrentExecutions
	if n < 0 {
		return validation(fmt.Sprintf("'%d'", n), "reservedConcurrentExecutions", "Member must have value greater than or equal to 0")
	}
	if n > MaxReservedConcurrency {
		return badParam(fmt.Sprintf("Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [100]: %d is over %d", n, MaxReservedConcurrency))
	}
	if _, e := s.setFunctionWide(r, func(f *store.Function) *apiError { f.ReservedConcurrency = &n; return nil }); e != nil {
		return e
	}
	return reply(w, http.StatusOK, in)
}

func (s *Server) getConcurrency(w http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	if qual != "" {
		return badParam("GetFunctionConcurrency takes an unqualified function name")
	}
	f, e := s.load(name, "")
	if e != nil {
		return e
	}
	if f.ReservedConcurrency == nil {
		return reply(w, http.StatusOK, struct{}{}) // none: {}, as AWS
	}
	return reply(w, http.StatusOK, concurrencyIn{f.ReservedConcurrency})
}

func (s *Server) deleteConcurrency(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := s.setFunctionWide(r, func(f *store.Function) *apiError { f.ReservedConcurrency = nil; return nil }); e != nil {
		return e
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// urlOut is a function URL config.
type urlOut struct {
	FunctionUrl      string
	FunctionArn      string
	AuthType         string
	Cors             any `json:",omitempty"`
	CreationTime     string
	LastModifiedTime string `json:",omitempty"`
	InvokeMode       string
}

func (s *Server) urlOut(f store.Function, withModified bool) urlOut {
	u := f.URL
	out := urlOut{FunctionArn: s.arn(f.Name), AuthType: u.AuthType, CreationTime: u.Created.UTC().Format(time.RFC3339Nano), InvokeMode: u.InvokeMode}
	if len(u.Cors) > 0 {
		out.Cors = u.Cors
	}
	if withModified {
		out.LastModifiedTime = u.LastModified.UTC().Format(time.RFC3339Nano)
	}
	if urler, ok := s.run.(URLer); ok {
		out.FunctionUrl = urler.FunctionURL(f.Name)
	}
	if out.FunctionUrl == "" {
		sum := sha256.Sum256([]byte(s.arn(f.Name)))
		id := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
		out.FunctionUrl = "https://" + id + ".lambda-url." + s.cfg.Region + ".on.aws/"
	}
	return out
}

func checkURL(in *urlIn, create bool) *apiError {
	switch in.AuthType {
	case "NONE", "AWS_IAM":
	case "":
		if create {
			return badParam("AuthType is required")
		}
	default:
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + in.AuthType + "' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, AWS_IAM]"}
	}
	switch in.InvokeMode {
	case "BUFFERED", "RESPONSE_STREAM":
	case "":
		if create {
			in.InvokeMode = "BUFFERED"
		}
	default:
		return &apiError{Status: http.StatusBadRequest, Type: "ValidationException",
			Msg: "1 validation error detected: Value '" + in.InvokeMode + "' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]"}
	}
	return nil
}

func (s *Server) createURL(w http.ResponseWriter, r *http.Request) *apiError {
	var in urlIn
	if e := decode(r, &in); e != nil {
		return e
	}
	if e := checkURL(&in, true); e != nil {
		return e
	}
	f, e := s.setFunctionWide(r, func(f *store.Function) *apiError {
		if f.URL != nil {
			return conflict("Failed to create function url config for [functionArn = " + s.arn(f.Name) + "]. Error message:  FunctionUrlConfig exists for this Lambda function")
		}
		now := time.Now()
		f.URL = &store.URLConfig{AuthType: in.AuthType, InvokeMode: in.InvokeMode, Cors: in.Cors, Created: now, LastModified: now}
		return nil
	})
	if e != nil {
		return e
	}
	return reply(w, http.StatusCreated, s.urlOut(f, false))
}

func (s *Server) getURL(w http.ResponseWriter, r *http.Request) *apiError {
	name, qual, e := s.target(r)
	if e != nil {
		return e
	}
	f, e := s.load(name, "")
	if e != nil {
		return e
	}
	if f.URL == nil || qual != "" { // an alias has no URL config here
		return notFound("The resource you requested does not exist.")
	}
	return reply(w, http.StatusOK, s.urlOut(f, true))
}

func (s *Server) updateURL(w http.ResponseWriter, r *http.Request) *apiError {
	var in urlIn
	if e := decode(r, &in); e != nil {
		return e
	}
	if e := checkURL(&in, false); e != nil {
		return e
	}
	f, e := s.setFunctionWide(r, func(f *store.Function) *apiError {
		if f.URL == nil {
			return notFound("The resource you requested does not exist.")
		}
		if in.AuthType != "" {
			f.URL.AuthType = in.AuthType
		}
		if in.InvokeMode != "" {
			f.URL.InvokeMode = in.InvokeMode
		}
		if len(in.Cors) > 0 {
			f.URL.Cors = in.Cors
		}
		f.URL.LastModified = time.Now()
		return nil
	})
	if e != nil {
		return e
	}
	return reply(w, http.StatusOK, s.urlOut(f, true))
}

func (s *Server) deleteURL(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := s.setFunctionWide(r, func(f *store.Function) *apiError {
		if f.URL == nil {
			return notFound("The resource you requested does not exist.")
		}
		f.URL = nil
		return nil
	}); e != nil {
		return e
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
