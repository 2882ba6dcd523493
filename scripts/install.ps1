<#
.SYNOPSIS
Installs Atlas's prebuilt Windows binaries (atlas-builder.exe and
atlas-fetcher.exe) without a Rust toolchain, checked against the release's
SHA256SUMS before anything is unpacked.

.DESCRIPTION
Downloads atlas-x86_64-pc-windows-msvc.zip and SHA256SUMS from the project's
GitHub release (as .github/workflows/release.yml publishes them), refuses the
archive unless its SHA-256 matches the line SHA256SUMS has for it (nothing is
unpacked, run or installed then), unpacks it into a temporary directory and
copies the binaries into -InstallDir. Windows on Arm runs the x64 build
(Windows 11 emulates it). The runner's binaries (atlas-runnerd, atlas-runner)
are Unix-only and not part of the Windows release.

SHA256SUMS comes from the same release: the check catches a corrupted or
swapped download (from a mirror too), not a compromised release. For the
strongest pin, give -Version and compare SHA256SUMS with the one you trust.

Every parameter has an environment variable, for the one-line form:
ATLAS_VERSION, ATLAS_INSTALL_DIR, ATLAS_RELEASE_URL, ATLAS_BINS
(comma-separated).

.PARAMETER Version
Release tag (v1.2.3) or `latest` (the default).

.PARAMETER InstallDir
Where the binaries go. Default: %LOCALAPPDATA%\Programs\Atlas\bin.

.PARAMETER ReleaseUrl
Base URL (https://, http://, file://) or directory holding the assets and
SHA256SUMS, instead of the project's GitHub releases (a mirror).

.PARAMETER Bin
Binaries to install, e.g. atlas-fetcher. Default: every binary in the archive.

.PARAMETER AddToPath
Also add InstallDir to the user's PATH (new terminals see it).

.EXAMPLE
irm https://raw.githubusercontent.com/atlas-modpacks/atlas/main/scripts/install.ps1 | iex

.EXAMPLE
& ([scriptblock]::Create((irm https://raw.githubusercontent.com/atlas-modpacks/atlas/main/scripts/install.ps1))) -Version v0.1.0 -Bin atlas-fetcher -AddToPath
#>
param(
    [string]$Version = $(if ($env:ATLAS_VERSION) { $env:ATLAS_VERSION } else { 'latest' }),
    [string]$InstallDir = $(if ($env:ATLAS_INSTALL_DIR) { $env:ATLAS_INSTALL_DIR } else { Join-Path $env:LOCALAPPDATA 'Programs\Atlas\bin' }),
    [string]$ReleaseUrl = $env:ATLAS_RELEASE_URL,
    [string[]]$Bin = $(if ($env:ATLAS_BINS) { $env:ATLAS_BINS -split ',' } else { @() }),
    [switch]$AddToPath
)

# Everything runs in a child scope: with `irm ... | iex` this script runs in
# the caller's session, whose preferences it must not change; and a download
# cut short is a parse error (no closing brace), so nothing of it runs.
& {
    $ErrorActionPreference = 'Stop'
    Set-StrictMode -Version 3.0
    $Repo = 'atlas-modpacks/atlas'

    # The Windows target release.yml builds (fetcher/tests/it/install_script.rs
    # checks that the two agree).
    switch ($env:PROCESSOR_ARCHITECTURE) {
        'AMD64' { $Target = 'x86_64-pc-windows-msvc' }
        'ARM64' { $Target = 'x86_64-pc-windows-msvc' } # x64 emulation
        default { throw "atlas install: no prebuilt Atlas binaries for Windows on $($env:PROCESSOR_ARCHITECTURE); build from source: cargo install --locked --git https://github.com/$Repo atlas-fetcher" }
    }
    $Asset = "atlas-$Target.zip"

    if ($Version -notmatch '^(latest|v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?)$') {
        throw "atlas install: -Version must be 'latest' or a release tag such as v1.2.3, not '$Version'"
    }
    if ($ReleaseUrl) {
        $Base = $ReleaseUrl.TrimEnd('/', '\')
    } elseif ($Version -eq 'latest') {
        $Base = "https://github.com/$Repo/releases/latest/download"
    } else {
        $Base = "https://github.com/$Repo/releases/download/$Version"
    }

    # Windows PowerShell 5.1 may default to TLS 1.0; GitHub needs 1.2.
    if ($PSVersionTable.PSVersion.Major -lt 6) {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
    }

    function Get-ReleaseFile([string]$Name, [string]$Dest) {
        $src = "$Base/$Name"
        try {
            if ($src -match '^https?://') {
                $progress = $ProgressPreference
                $ProgressPreference = 'SilentlyContinue' # the progress bar makes 5.1 slow
                try { Invoke-WebRequest -UseBasicParsing -Uri $src -OutFile $Dest }
                finally { $ProgressPreference = $progress }
            } elseif ($src -match '^file://') {
                Copy-Item -LiteralPath ([uri]$src).LocalPath -Destination $Dest
            } else {
                Copy-Item -LiteralPath (Join-Path $Base $Name) -Destination $Dest
            }
        } catch {
            throw "atlas install: downloading $src failed ($($_.Exception.Message)); check -Version ($Version) and that the release has $Name"
        }
    }

    $Work = Join-Path ([IO.Path]::GetTempPath()) ("atlas-install-" + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $Work | Out-Null
    try {
        Write-Host "atlas install: installing Atlas $Version for $Target from $Base"
        Get-ReleaseFile 'SHA256SUMS' (Join-Path $Work 'SHA256SUMS')
        $Archive = Join-Path $Work $Asset
        Get-ReleaseFile $Asset $Archive

        # `sha256sum` lines: "<hex>  <name>" (or "<hex> *<name>").
        $Expected = $null
        foreach ($line in Get-Content -LiteralPath (Join-Path $Work 'SHA256SUMS')) {
            if ($line -match '^([0-9A-Fa-f]{64}) [ *](.+)$' -and $Matches[2].Trim() -eq $Asset) {
                $Expected = $Matches[1].ToLowerInvariant()
                break
            }
        }
        if (-not $Expected) {
            throw "atlas install: SHA256SUMS of release $Version lists no $Asset; refusing to install it"
        }
        $Actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $Archive).Hash.ToLowerInvariant()
        if ($Actual -ne $Expected) {
            Remove-Item -LiteralPath $Archive -Force
            throw "atlas install: SHA-256 mismatch for ${Asset}: SHA256SUMS says $Expected, the download is $Actual; refusing to install it (nothing was unpacked, run or installed)"
        }
        Write-Host "atlas install: SHA-256 of $Asset matches SHA256SUMS ($Actual)"

        $Unpacked = Join-Path $Work 'unpacked'
        Expand-Archive -LiteralPath $Archive -DestinationPath $Unpacked
        $Available = @(Get-ChildItem -LiteralPath $Unpacked -File -Filter 'atlas-*.exe' | ForEach-Object { $_.BaseName })
        if ($Available.Count -eq 0) { throw "atlas install: $Asset holds no atlas-*.exe" }
        $Wanted = @($Bin | ForEach-Object { $_.Trim() -replace '\.exe$', '' } | Where-Object { $_ })
        if ($Wanted.Count -eq 0) { $Wanted = $Available }
        foreach ($b in $Wanted) {
            if ($Available -notcontains $b) {
                throw "atlas install: -Bin: $Asset has no '$b'; it has: $($Available -join ', ')"
            }
        }

        New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
        $InstallDir = (Resolve-Path -LiteralPath $InstallDir).Path
        foreach ($b in $Wanted | Select-Object -Unique) {
            $dest = Join-Path $InstallDir "$b.exe"
            $tmp = "$dest.atlas-install"
            Copy-Item -LiteralPath (Join-Path $Unpacked "$b.exe") -Destination $tmp -Force
            if (Test-Path -LiteralPath $dest) {
                # A running .exe cannot be overwritten but can be renamed:
                # swap, then remove the old one when it is not in use.
                [IO.File]::Replace($tmp, $dest, "$dest.old")
                Remove-Item -LiteralPath "$dest.old" -Force -ErrorAction SilentlyContinue
            } else {
                [IO.File]::Move($tmp, $dest)
            }
            Write-Host "atlas install: installed $dest"
        }

        $UserPath = [Environment]::GetEnvironmentVariable('Path', 'User')
        $OnPath = @(($UserPath -split ';') + ($env:Path -split ';') | Where-Object { $_ -and ($_.TrimEnd('\') -ieq $InstallDir.TrimEnd('\')) }).Count -gt 0
        if (-not $OnPath) {
            if ($AddToPath) {
                $NewPath = if ($UserPath) { "$UserPath;$InstallDir" } else { $InstallDir }
                [Environment]::SetEnvironmentVariable('Path', $NewPath, 'User')
                $env:Path = "$env:Path;$InstallDir"
                Write-Host "atlas install: added $InstallDir to your user PATH (new terminals see it)"
            } else {
                Write-Host "atlas install: $InstallDir is not on your PATH; run this installer with -AddToPath, or:"
                Write-Host "atlas install:   [Environment]::SetEnvironmentVariable('Path', [Environment]::GetEnvironmentVariable('Path', 'User') + ';$InstallDir', 'User')"
            }
        }
        Write-Host "atlas install: done: Atlas $Version ($($Wanted -join ', ')) in $InstallDir"
    } finally {
        Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue
    }
}
