"""Entry point of the baselines plugin: registers every baseline model."""

from mer_bench.hookspecs import hookimpl
from mer_bench_baselines.almt import ALMT
from mer_bench_baselines.cenet import CENET
from mer_bench_baselines.ef_lstm import EFLSTM
from mer_bench_baselines.graph_mfn import GraphMFN
from mer_bench_baselines.lf_dnn import LFDNN
from mer_bench_baselines.lmf import LMF
from mer_bench_baselines.mag_bert import MAGBERT
from mer_bench_baselines.mctn import MCTN
from mer_bench_baselines.mean import MeanPredictor
from mer_bench_baselines.mfm import MFM
from mer_bench_baselines.mfn import MFN
from mer_bench_baselines.misa import MISA
from mer_bench_baselines.mlf_dnn import MLFDNN
from mer_bench_baselines.mlmf import MLMF
from mer_bench_baselines.mmim import MMIM
from mer_bench_baselines.mult import MulT
from mer_bench_baselines.mtfn import MTFN
from mer_bench_baselines.self_mm import SelfMM
from mer_bench_baselines.tetfn import TETFN
from mer_bench_baselines.tfn import TFN
from mer_bench_baselines.tfr_net import TFRNet
from mer_bench_baselines.unimodal import UnimodalAudio, UnimodalText, UnimodalVision

MODELS = (MeanPredictor, UnimodalText, UnimodalAudio, UnimodalVision, LFDNN, EFLSTM, TFN, LMF, MulT, MISA, SelfMM,
          MLFDNN, MTFN, MLMF, TETFN, TFRNet, MMIM, ALMT, CENET, MAGBERT,
          MFN, MCTN, MFM, GraphMFN)


@hookimpl
def register_models(register):
    for model in MODELS:
        register(model)
