#include "services/auth/tls.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "services/auth/cert_check.h"

namespace caliber::auth {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

// Reads one PEM file named by `what` (e.g. "cert_file"), so errors say which option is wrong.
absl::StatusOr<std::string> ReadPem(std::string_view what, const std::string& path) {
  const std::string label =
      absl::StrCat("TLS ", absl::string_view(what.data(), what.size()), " ", path);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::NotFoundError(label + ": does not exist");
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(label + ": not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(label + ": cannot be read");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(label + ": read error");
  std::string text = std::move(buffer).str();
  if (text.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": larger than ", kMaxPemBytes, " bytes"));
  }
  if (text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(label + ": not PEM (no \"-----BEGIN\" line)");
  }
  return text;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Gives no password: OpenSSL's default callback would prompt on the terminal for an encrypted
// key, hanging a daemon.
int NoPassword(char*, int, int, void*) { return 0; }

// gRPC only reports a bad certificate or key when the server starts (BuildAndStart returns
// null after a log line) or at the first handshake; parsing here names the file instead.
absl::Status CheckCertAndKey(const TlsOptions& options, const std::string& cert_pem,
                             const std::string& key_pem) {
  auto cert_bio = MemBio(cert_pem);
  std::unique_ptr<X509, X509Deleter> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, NoPassword, nullptr));
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS cert_file ", options.cert_file, ": no PEM certificate could be parsed"));
  }
  auto key_bio = MemBio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassword, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS key_file ", options.key_file, ": no unencrypted PEM private key could be parsed"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("TLS key_file ", options.key_file,
                                                   " does not match the certificate in cert_file ",
                                                   options.cert_file));
  }
  return absl::OkStatus();
}

// Both or neither of cert_file/key_file; `required` on the server side.
absl::Status LoadKeyPair(const TlsOptions& options, bool required, absl::Time now, TlsMaterial& m) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS: cert_file and key_file go together, got only ",
                     options.cert_file.empty() ? "key_file " + options.key_file
                                               : "cert_file " + options.cert_file));
  }
  if (options.cert_file.empty()) {
    if (required) {
      return absl::InvalidArgumentError(
          "TLS: a server needs cert_file and key_file (only ca_file was given)");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> cert = ReadPem("cert_file", options.cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem("key_file", options.key_file);
  if (!key.ok()) return key.status();
  if (absl::Status s = CheckCertAndKey(options, *cert, *key); !s.ok()) return s;
  absl::StatusOr<std::vector<CertDates>> dates = ParseCertificates("cert_file", options.cert_file, *cert);
  if (!dates.ok()) return dates.status();
  if (absl::Status s = CheckDates("cert_file", options.cert_file, *dates, now); !s.ok()) return s;
  m.cert = std::move(*cert);
  m.key = std::move(*key);
  m.cert_expiry = EarliestExpiry(*dates);
  return absl::OkStatus();
}

absl::Status LoadCa(const TlsOptions& options, absl::Time now, TlsMaterial& m) {
  if (options.ca_file.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> ca = ReadPem("ca_file", options.ca_file);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::vector<CertDates>> dates = ParseCertificates("ca_file", options.ca_file, *ca);
  if (!dates.ok()) return dates.status();
  if (absl::Status s = CheckDates("ca_file", options.ca_file, *dates, now); !s.ok()) return s;
  m.ca = std::move(*ca);
  m.ca_expiry = EarliestExpiry(*dates);
  return absl::OkStatus();
}

}  // namespace

bool TlsOptions::enabled() const {
  return !cert_file.empty() || !key_file.empty() || !ca_file.empty();
}

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsOptions& options, bool server, absl::Time now) {
  if (options.require_client_cert && options.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS: require_client_cert needs ca_file (the CA that signs client certificates)");
  }
  TlsMaterial m;
  if (!options.enabled()) return m;
  if (absl::Status s = LoadKeyPair(options, /*required=*/server, now, m); !s.ok()) return s;
  if (absl::Status s = LoadCa(options, now, m); !s.ok()) return s;
  return m;
}

grpc_ssl_client_certificate_request_type ClientCertRequest(const TlsOptions& options) {
  // With a CA but no requirement, a client certificate is optional but verified when presented,
  // so an identity seen by the server is always one the CA vouches for.
  return options.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
         : options.ca_file.empty()   ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  if (!options.enabled()) {
    if (options.require_client_cert) {
      return absl::InvalidArgumentError(
          "TLS: require_client_cert needs cert_file, key_file and ca_file");
    }
    return grpc::InsecureServerCredentials();
  }
  absl::StatusOr<TlsMaterial> m = LoadTlsMaterial(options, /*server=*/true);
  if (!m.ok()) return m.status();
  grpc::SslServerCredentialsOptions ssl(ClientCertRequest(options));
  ssl.pem_root_certs = std::move(m->ca);
  ssl.pem_key_cert_pairs.push_back({std::move(m->key), std::move(m->cert)});
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::SslServerCredentials(ssl);
  if (creds == nullptr) return absl::InternalError("TLS: gRPC refused the server credentials");
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& options) {
  if (!options.enabled()) return grpc::InsecureChannelCredentials();
  absl::StatusOr<TlsMaterial> m = LoadTlsMaterial(options, /*server=*/false);
  if (!m.ok()) return m.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = std::move(m->ca);
  ssl.pem_private_key = std::move(m->key);
  ssl.pem_cert_chain = std::move(m->cert);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(ssl);
  if (creds == nullptr) return absl::InternalError("TLS: gRPC refused the channel credentials");
  return creds;
}

grpc::ChannelArguments ChannelArgs(const TlsOptions& options) {
  grpc::ChannelArguments args;
  if (options.enabled() && !options.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options.server_name_override);
  }
  // Replies as large as the servers accept requests (64 MiB): the transform phase's R1
  // gradient sums are hidden_size² doubles.
  args.SetMaxReceiveMessageSize(64 << 20);
  return args;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const TlsOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = MakeChannelCredentials(options);
  if (!creds.ok()) return creds.status();
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(target, *creds, ChannelArgs(options));
  if (channel == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create a channel to ", target));
  }
  return channel;
}

}  // namespace caliber::auth
