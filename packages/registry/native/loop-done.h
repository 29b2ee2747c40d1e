// How a native transfer driven by the caller's libuv loop reports its end (sendfile.cc,
// relay.cc): `done(errno, sent)` is called exactly once unless the transfer was cancelled first,
// never from inside a JavaScript call (from there it is deferred to the next loop turn), and
// after it the JavaScript object is let go.
//
// Self (CRTP) provides Release() (stop polling, close its descriptors) and Unref() (drop its
// persistent self-reference), and fills loop_, done_ and context_ when constructed.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cstdint>

template <typename Self>
class LoopDone {
 protected:
  // Ends the transfer with `err` (0: every byte sent). `sync` is true inside a JS call.
  void Finish(int err, bool sync) {
    if (finished_) return;
    finished_ = true;
    err_ = err;
    self().Release();
    if (!sync) return Report();
    auto* idle = new uv_idle_t;
    idle->data = this;
    uv_idle_init(loop_, idle);
    uv_idle_start(idle, [](uv_idle_t* h) {
      uv_idle_stop(h);
      auto* me = static_cast<LoopDone*>(h->data);
      uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* hh) { delete reinterpret_cast<uv_idle_t*>(hh); });
      me->Report();
    });
  }

  // Cancel(): stops at once; `done` is never called afterwards.
  void CancelNow() {
    cancelled_ = true;
    if (finished_) return;
    finished_ = true;
    self().Release();
    self().Unref();
  }

  uv_loop_t* loop_ = nullptr;
  Napi::FunctionReference done_;
  Napi::AsyncContext* context_ = nullptr;
  uint64_t sent_ = 0;
  int err_ = 0;
  bool finished_ = false;
  bool cancelled_ = false;

 private:
  Self& self() { return *static_cast<Self*>(this); }

  void Report() {
    Napi::Env env = done_.Env();
    Napi::HandleScope scope(env);
    if (!cancelled_) {
      done_.MakeCallback(env.Global(), {Napi::Number::New(env, err_), Napi::Number::New(env, static_cast<double>(sent_))}, *context_);
    }
    done_.Reset();
    self().Unref();
  }
};
