// Resumable SHA-256 / SHA-512 whose complete state is a plain byte buffer.
//
// The state is OpenSSL's SHA256_CTX / SHA512_CTX (the implementation Node itself links,
// hardware-accelerated where the CPU allows) held inside a JS Buffer owned by the caller.
// Because the buffer IS the state, it can be stored anywhere (e.g. Redis) between chunks
// and continued by another process of the same Node/OpenSSL build; the JS side tags saved
// states with that build so a foreign state is never loaded.
//
//   init(alg: 256|512): Buffer                 fresh state
//   update(alg, state: Buffer, data: Buffer)   mutates state in place
//   digest(alg, state: Buffer): Buffer         final digest; state is left unusable
#include <napi.h>
#include <openssl/sha.h>
#include <cstring>

namespace {

size_t CtxSize(int alg) { return alg == 512 ? sizeof(SHA512_CTX) : sizeof(SHA256_CTX); }

bool CheckArgs(const Napi::CallbackInfo& info, int* alg, Napi::Buffer<uint8_t>* state) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "expected (alg, state)").ThrowAsJavaScriptException();
    return false;
  }
  *alg = info[0].As<Napi::Number>().Int32Value();
  if (*alg != 256 && *alg != 512) {
    Napi::TypeError::New(env, "alg must be 256 or 512").ThrowAsJavaScriptException();
    return false;
  }
  *state = info[1].As<Napi::Buffer<uint8_t>>();
  if (state->Length() != CtxSize(*alg)) {
    Napi::TypeError::New(env, "state has the wrong size").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int alg = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  if (alg != 256 && alg != 512) {
    Napi::TypeError::New(env, "alg must be 256 or 512").ThrowAsJavaScriptException();
    return env.Null();
  }
  auto buf = Napi::Buffer<uint8_t>::New(env, CtxSize(alg));
  memset(buf.Data(), 0, buf.Length());
  if (alg == 512) SHA512_Init(reinterpret_cast<SHA512_CTX*>(buf.Data()));
  else SHA256_Init(reinterpret_cast<SHA256_CTX*>(buf.Data()));
  return buf;
}

Napi::Value Update(const Napi::CallbackInfo& info) {
  int alg;
  Napi::Buffer<uint8_t> state;
  if (!CheckArgs(info, &alg, &state)) return info.Env().Undefined();
  if (info.Length() < 3 || !info[2].IsTypedArray()) {
    Napi::TypeError::New(info.Env(), "expected data").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto data = info[2].As<Napi::Uint8Array>();
  if (alg == 512) SHA512_Update(reinterpret_cast<SHA512_CTX*>(state.Data()), data.Data(), data.ByteLength());
  else SHA256_Update(reinterpret_cast<SHA256_CTX*>(state.Data()), data.Data(), data.ByteLength());
  return info.Env().Undefined();
}

Napi::Value Digest(const Napi::CallbackInfo& info) {
  int alg;
  Napi::Buffer<uint8_t> state;
  if (!CheckArgs(info, &alg, &state)) return info.Env().Null();
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), alg == 512 ? 64 : 32);
  if (alg == 512) SHA512_Final(out.Data(), reinterpret_cast<SHA512_CTX*>(state.Data()));
  else SHA256_Final(out.Data(), reinterpret_cast<SHA256_CTX*>(state.Data()));
  return out;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("update", Napi::Function::New(env, Update));
  exports.Set("digest", Napi::Function::New(env, Digest));
  return exports;
}

}  // namespace

NODE_API_MODULE(strata_hash, InitModule)
