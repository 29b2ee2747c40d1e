// Relays a byte count from one non-blocking socket to another in native code, driven by the
// caller's libuv loop (Linux only; elsewhere `supported` is false). Used for S3 response
// bodies that go to a client unchanged (http/relay.ts).
//
//   supported: boolean
//   new Relay(srcFd, dstFd, length, done(errno, sent), copyBytes = 0)
//     .start()      begins; `done` is called exactly once, unless cancelled first
//     .cancel()     stops at once; `done` is never called afterwards
//     .sent         bytes handed to the destination so far
//
// With copyBytes = 0 the bytes move by splice(2) through a pipe (no copy through user space);
// with copyBytes > 0 by read(2) into one buffer of that size and write(2) from it.
// Exactly `length` bytes are read from the source: nothing past them, and errno EPIPE when the
// source ends before them.
//
// Both descriptors are duplicated: the duplicates are what the relay reads, writes and waits on
// (one uv_poll_t each), so the caller's own handles on the sockets (which libuv watches under
// the original numbers) are never disturbed, and a socket closed meanwhile cannot be confused
// with a new one reusing its number. The duplicates are closed when the relay ends or is
// cancelled. Each loop turn moves at most TURN_BYTES before yielding back to the loop.
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <memory>

#ifdef __linux__
#include <fcntl.h>
#include <unistd.h>
#endif

#include "loop-done.h"

namespace {

#ifdef __linux__

constexpr size_t TURN_BYTES = 16 * 1024 * 1024;
constexpr int PIPE_BYTES = 1024 * 1024;

class Relay : public Napi::ObjectWrap<Relay>, public LoopDone<Relay> {
  friend class LoopDone<Relay>;

 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Relay",
                       {InstanceMethod("start", &Relay::Start), InstanceMethod("cancel", &Relay::Cancel),
                        InstanceAccessor("sent", &Relay::Sent, nullptr)});
  }

  explicit Relay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Relay>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsFunction()) {
      Napi::TypeError::New(env, "expected (srcFd, dstFd, length, done)").ThrowAsJavaScriptException();
      return;
    }
    int src = info[0].As<Napi::Number>().Int32Value();
    int dst = info[1].As<Napi::Number>().Int32Value();
    double len = info[2].As<Napi::Number>().DoubleValue();
    if (src < 0 || dst < 0 || len < 0 || len > 9007199254740991.0) {
      Napi::RangeError::New(env, "invalid descriptor or length").ThrowAsJavaScriptException();
      return;
    }
    remaining_ = static_cast<uint64_t>(len);
    if (info.Length() > 4 && info[4].IsNumber()) copyBytes_ = info[4].As<Napi::Number>().Uint32Value();
    src_ = fcntl(src, F_DUPFD_CLOEXEC, 0);
    dst_ = fcntl(dst, F_DUPFD_CLOEXEC, 0);
    if (src_ < 0 || dst_ < 0) {
      CloseFds();
      Napi::Error::New(env, "dup failed").ThrowAsJavaScriptException();
      return;
    }
    if (copyBytes_ > 0) {
      buffer_.reset(new char[copyBytes_]);
    } else {
      if (pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) != 0) {
        CloseFds();
        Napi::Error::New(env, "pipe failed").ThrowAsJavaScriptException();
        return;
      }
      int got = fcntl(pipe_[1], F_SETPIPE_SZ, PIPE_BYTES);
      pipeBytes_ = got > 0 ? static_cast<size_t>(got) : 65536;
    }
    done_ = Napi::Persistent(info[3].As<Napi::Function>());
    context_ = new Napi::AsyncContext(env, "strata.relay");
    napi_get_uv_event_loop(env, &loop_);
  }

  ~Relay() override {
    // Only reached once the poll handles are closed (the JS object is kept alive until then).
    CloseFds();
    delete context_;
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (started_ || src_ < 0 || dst_ < 0) return info.Env().Undefined();
    started_ = true;
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
    srcPoll_ = NewPoll(src_);
    dstPoll_ = NewPoll(dst_);
    if (srcPoll_ == nullptr || dstPoll_ == nullptr) {
      Finish(EIO, true);
      return info.Env().Undefined();
    }
    Turn(true);
    return info.Env().Undefined();
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    CancelNow();
    return info.Env().Undefined();
  }

  Napi::Value Sent(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(sent_)); }

  uv_poll_t* NewPoll(int fd) {
    auto* p = new uv_poll_t;
    p->data = this;
    if (uv_poll_init(loop_, p, fd) != 0) {
      delete p;
      return nullptr;
    }
    return p;
  }

  static void OnReady(uv_poll_t* handle, int /*status*/, int /*events*/) {
    // An error reported by the poll (a reset or closed peer) also shows as the next call's errno.
    auto* self = static_cast<Relay*>(handle->data);
    if (self->finished_) return;
    uv_poll_stop(handle);
    self->Turn(false);
  }

  // Bytes moved from the source into the pipe or buffer; -1 with errno.
  ssize_t Fill() {
    if (copyBytes_ > 0) {
      size_t want = remaining_ < copyBytes_ ? static_cast<size_t>(remaining_) : copyBytes_;
      ssize_t n = read(src_, buffer_.get(), want);
      if (n > 0) bufferOffset_ = 0;
      return n;
    }
    size_t want = remaining_ < pipeBytes_ ? static_cast<size_t>(remaining_) : pipeBytes_;
    return splice(src_, nullptr, pipe_[1], nullptr, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  }

  // Bytes moved from the pipe or buffer to the destination; -1 with errno.
  ssize_t Drain() {
    if (copyBytes_ > 0) {
      ssize_t n = write(dst_, buffer_.get() + bufferOffset_, pending_);
      if (n > 0) bufferOffset_ += static_cast<size_t>(n);
      return n;
    }
    return splice(pipe_[0], nullptr, dst_, nullptr, pending_, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  }

  // Moves bytes until a socket would block, the count is done, an error occurs or the turn's
  // budget is spent; then waits on the socket that blocked or finishes. `sync` is true inside a
  // JS call (start).
  void Turn(bool sync) {
    size_t budget = TURN_BYTES;
    while (budget > 0) {
      if (pending_ > 0) {
        ssize_t n = Drain();
        if (n > 0) {
          pending_ -= static_cast<size_t>(n);
          sent_ += static_cast<uint64_t>(n);
          budget = static_cast<size_t>(n) >= budget ? 0 : budget - static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Wait(dstPoll_, UV_WRITABLE, sync);
        return Finish(n == 0 ? EIO : errno, sync);
      }
      if (remaining_ == 0) return Finish(0, sync);
      ssize_t n = Fill();
      if (n > 0) {
        pending_ = static_cast<size_t>(n);
        remaining_ -= static_cast<uint64_t>(n);
        continue;
      }
      if (n == 0) return Finish(EPIPE, sync);  // the source ended before `length` bytes
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Wait(srcPoll_, UV_READABLE, sync);
      return Finish(errno, sync);
    }
    // Budget spent: continue on a later loop turn (the destination is polled; it is writable
    // at once while it has room).
    Wait(pending_ > 0 ? dstPoll_ : srcPoll_, pending_ > 0 ? UV_WRITABLE : UV_READABLE, sync);
  }

  void Wait(uv_poll_t* poll, int events, bool sync) {
    int r = uv_poll_start(poll, events, OnReady);
    if (r != 0) Finish(-r, sync);
  }


  // Stops and closes a poll handle, then closes its descriptor (after the handle is closed).
  static void ClosePoll(uv_poll_t* p, int fd) {
    uv_poll_stop(p);
    p->data = reinterpret_cast<void*>(static_cast<intptr_t>(fd));
    uv_close(reinterpret_cast<uv_handle_t*>(p), [](uv_handle_t* h) {
      int f = static_cast<int>(reinterpret_cast<intptr_t>(h->data));
      if (f >= 0) close(f);
      delete reinterpret_cast<uv_poll_t*>(h);
    });
  }

  void Release() {
    if (srcPoll_ != nullptr) {
      ClosePoll(srcPoll_, src_);
      srcPoll_ = nullptr;
      src_ = -1;
    }
    if (dstPoll_ != nullptr) {
      ClosePoll(dstPoll_, dst_);
      dstPoll_ = nullptr;
      dst_ = -1;
    }
    CloseFds();
  }

  void CloseFds() {
    for (int* fd : {&src_, &dst_, &pipe_[0], &pipe_[1]}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
  }

  void Unref() {
    if (!self_.IsEmpty()) self_.Reset();
  }

  uv_poll_t* srcPoll_ = nullptr;
  uv_poll_t* dstPoll_ = nullptr;
  Napi::ObjectReference self_;
  std::unique_ptr<char[]> buffer_;
  uint32_t copyBytes_ = 0;
  size_t bufferOffset_ = 0;
  size_t pipeBytes_ = 0;
  int src_ = -1;
  int dst_ = -1;
  int pipe_[2] = {-1, -1};
  uint64_t remaining_ = 0;
  size_t pending_ = 0;
  bool started_ = false;
};

#endif

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
#ifdef __linux__
  exports.Set("supported", Napi::Boolean::New(env, true));
  exports.Set("Relay", Relay::Define(env));
#else
  exports.Set("supported", Napi::Boolean::New(env, false));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(strata_relay, InitModule)
